"""The answer decision's parts: answer types, time words, features, the fitted model and its file."""

from __future__ import annotations

import json
from datetime import date

import pytest

from rag.answer.decision import BASE_FEATURES, FEATURES, DecisionModel, decide, features, load_model
from rag.core.errors import BadInputError
from rag.core.types import ArticleMeta, Evidence, EvidenceSentence, Passage, ScoredPassage
from rag.evaluate.calibrate import Row, choose_threshold, curve, fit, split
from rag.text.answer_types import has_answer_type, question_type
from rag.text.timeframe import age_days, asked_period_start, parse_as_of, resolve


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Who is the U.S. ambassador to NATO?", "person"),
        ("When did Russia launch its full-scale invasion?", "date"),
        ("In what year did NATO agree?", "date"),
        ("Where did NATO foreign ministers meet?", "place"),
        ("Which city hosts the summit?", "place"),
        ("How many allies will Ukraine sit with?", "number"),
        ("How much military aid in dollars has the US given?", "amount"),
        ("What is the Ukraine Contact Group?", None),
    ],
)
def test_question_types(question, kind):
    assert question_type(question) == kind


def test_a_sentence_holds_the_kind_of_answer_only_beyond_what_the_question_says():
    q = "When did NATO defense ministers gather?"
    assert has_answer_type("NATO defense ministers gathered on Thursday in Brussels.", "date", q)
    assert not has_answer_type("NATO defense ministers gathered to talk about Ukraine.", "date", q)
    n = "How many allies will Ukraine sit with as an equal?"
    assert has_answer_type("Ukraine will sit with the 31 allies as an equal.", "number", n)
    assert has_answer_type("Ukraine will sit with thirty-one allies.", "number", n) or has_answer_type(
        "Ukraine sits with thirty allies.", "number", n
    )
    assert not has_answer_type("Ukraine will sit with the allies as an equal.", "number", n)
    w = "Who is the U.S. ambassador to NATO?"
    assert has_answer_type("The U.S. ambassador to NATO, Julianne Smith, said so.", "person", w)
    assert not has_answer_type("The U.S. ambassador to NATO said so.", "person", w)


@pytest.mark.parametrize(
    "sentence, holds",
    [
        ("The national average for regular gas is now $4.32 a gallon, according to AAA.", True),
        ("Gasoline prices were up nearly 60% over the year.", True),
        ("The pump consumes only 1% to 3% of the turbine power.", True),
        ("Prices rose by 4 percent in June.", True),
        ("Gas cost $5 a gallon in June.", False),  # the question's own amount is no answer
        ("Gas prices rose sharply over the year.", False),
    ],
)
def test_amounts_are_read_with_their_currency_and_percent_signs(sentence, holds):
    assert has_answer_type(sentence, "amount", "Gas hit $5 a gallon: how much does a gallon cost now?") is holds


def test_a_year_is_no_count_unless_it_counts_something():
    q = "How many years had passed since NATO first promised Ukraine membership in Bucharest?"
    assert not has_answer_type("Ukraine was first promised NATO membership at a 2008 summit.", "number", q)
    assert not has_answer_type("That was in 2008.", "number", q)
    assert has_answer_type("In the 15 years since, NATO has said its doors remain open.", "number", q)
    assert has_answer_type("About 2000 troops took part.", "number", "How many soldiers took part?")


def test_time_words_resolve_against_the_as_of_date():
    as_of = date(2022, 6, 16)
    week = resolve("Which automaker recalled cars this week?", as_of)
    assert week.window == (date(2022, 6, 9), as_of) and week.has_cue
    assert resolve("What is the latest on the strike?", as_of).wants_recent
    assert resolve("Who was quoted last month?", as_of).window[0] == date(2022, 4, 15)
    plain = resolve("What is the Ukraine Contact Group?", as_of)
    assert not plain.has_cue and plain.window is None
    assert age_days("2022-06-14", as_of) == 2 and age_days(None, as_of) is None and age_days("2022-06-20", as_of) == -4


def test_as_of_parsing_is_strict():
    assert parse_as_of("2022-06-16") == (date(2022, 6, 16), True)
    assert parse_as_of(None, today=date(2026, 1, 2)) == (date(2026, 1, 2), False)
    assert parse_as_of("2022-06-16T10:00:00")[0] == date(2022, 6, 16)
    for bad in ["yesterday", "2022-13-01", "16/06/2022"]:
        with pytest.raises(BadInputError, match="as_of"):
            parse_as_of(bad)


def _evidence(
    question: str, sentences: list[tuple[str, str, float]], dated: str | None = "2023-06-15"
) -> tuple[Evidence, list[ScoredPassage]]:
    scored, ev = [], []
    for i, (doc, text, rel) in enumerate(sentences):
        p = Passage(
            passage_id=f"{doc}#0",
            doc_id=doc,
            ordinal=0,
            text=text,
            start=0,
            end=len(text),
            meta=ArticleMeta(title=f"Title {doc}", date=dated),
        )
        scored.append(
            ScoredPassage(
                passage=p, score=1.0 / (i + 1), dense_score=rel, bm25_score=3.0 if i == 0 else None, rank=i + 1
            )
        )
        ev.append(
            EvidenceSentence(
                text=text,
                doc_id=doc,
                passage_id=p.passage_id,
                start=0,
                end=len(text),
                relevance=rel,
                dense=rel,
                coverage=rel,
            )
        )
    from rag.answer.evidence import meta_text
    from rag.verify.support import missing_terms

    # As select_evidence fills it: the question's names and numbers no passage or its metadata mentions.
    absent = missing_terms(question, [sp.passage.text + " " + meta_text(sp.passage.meta) for sp in scored])
    return Evidence(
        question=question, sources=scored, sentences=ev, strength=max(r for *_, r in sentences), missing_terms=absent
    ), scored


def test_features_see_answer_type_margin_and_missing_names():
    q = "How many allies will Ukraine sit with at the NATO-Ukraine Council?"
    ev, scored = _evidence(
        q,
        [
            ("a", "Ukraine will sit with the 31 allies at the NATO-Ukraine Council.", 0.8),
            ("b", "The council meets in Brussels.", 0.5),
        ],
    )
    values = features(ev, scored, resolve(q, date(2023, 7, 1)), None)
    assert set(values) == set(FEATURES)
    assert values["type_known"] == 1.0 and values["type_best"] == 1.0
    assert values["margin"] == pytest.approx(0.3)
    assert values["agreement"] == pytest.approx(0.5)
    absent = features(
        *_evidence("What did Zelensky say in Vilnius?", [("a", "Allies met in Brussels on Thursday.", 0.6)]), None, None
    )
    assert absent["missing_names"] == 1.0


def test_time_fit_measures_how_far_the_best_article_is_from_the_asked_time():
    q = "Which automaker recalled cars this week?"
    inside = features(
        *_evidence(q, [("a", "Ford recalled 2.9 million vehicles.", 0.7)], dated="2022-06-14"),
        resolve(q, date(2022, 6, 16)),
        None,
    )
    outside = features(
        *_evidence(q, [("a", "Ford recalled 2.9 million vehicles.", 0.7)], dated="2021-06-14"),
        resolve(q, date(2022, 6, 16)),
        None,
    )
    assert inside["time_cue"] == outside["time_cue"] == 1.0
    assert inside["time_fit"] == 1.0 and outside["time_fit"] < 0.05


def test_this_weeks_report_outranks_a_closer_match_from_weeks_before():
    from rag.answer.evidence import date_sentences
    from rag.answer.quoting import extract_sentences
    from rag.text.timeframe import time_fit

    q = "Which major holiday did India celebrate this week?"
    ev, scored = _evidence(
        q,
        [
            ("old", "The holiday is a major celebration in India.", 0.63),
            ("new", "Millions celebrated 75 years of Indian independence.", 0.45),
        ],
    )
    scored[0].passage.meta.date, scored[1].passage.meta.date = "2022-07-07", "2022-08-14"
    frame = resolve(q, date(2022, 8, 18))
    assert time_fit("2022-08-14", frame) == 1.0 and time_fit("2022-07-07", frame) == pytest.approx(7 / 42)
    assert time_fit("2022-08-20", frame) == 0.0 and time_fit(None, frame) == 1.0
    assert time_fit("2022-07-07", resolve("Which holiday did India celebrate?", date(2022, 8, 18))) == 1.0
    date_sentences(ev.sentences, scored, frame)
    assert [s.doc_id for s in extract_sentences(ev, 1)] == ["new"]
    values = features(ev, scored, frame, None)
    assert values["strength"] == pytest.approx(0.45) and values["time_fit"] == 1.0  # judged on the sentence it quotes
    # Without a time in the question the closer match leads, as before.
    plain, plain_scored = _evidence(
        "Which major holiday did India celebrate?",
        [
            ("old", "The holiday is a major celebration in India.", 0.63),
            ("new", "Millions celebrated 75 years of Indian independence.", 0.45),
        ],
    )
    date_sentences(plain.sentences, plain_scored, resolve(plain.question, date(2022, 8, 18)))
    assert [s.doc_id for s in extract_sentences(plain, 1)] == ["old"]


def _model(weights: dict[str, float], bias: float = 0.0, threshold: float = 0.5) -> DecisionModel:
    names = FEATURES if any(f.startswith("reader_") for f in weights) else BASE_FEATURES
    return DecisionModel(
        weights=[weights.get(f, 0.0) for f in names],
        bias=bias,
        mean=[0.0] * len(names),
        scale=[1.0] * len(names),
        threshold=threshold,
        confident=0.9,
        features=names,
    )


def test_decide_abstains_with_a_readable_reason():
    q = "When did the ministers meet?"
    ev, scored = _evidence(q, [("a", "The ministers met to talk about Ukraine.", 0.7)])
    verdict = decide(_model({"type_top3": 10.0}, bias=-5.0), ev, scored, resolve(q, date(2023, 7, 1)), None)
    assert not verdict.answer and verdict.probability < 0.5
    assert verdict.reason.startswith("no date that answers the question appears")
    empty = decide(_model({}), Evidence(question=q, sources=[], sentences=[]), [], None, None)
    assert not empty.answer and empty.reason == "nothing relevant was retrieved"


@pytest.mark.parametrize(
    "question, start",
    [
        ("What did NATO leaders decide at the Washington summit in July 2024?", date(2024, 7, 1)),
        ("What did NATO decide at its 2025 summit in The Hague?", date(2025, 1, 1)),
        ("What happened to the bid in 2008 and in 2024?", date(2008, 1, 1)),  # the earliest: part may be reported
        ("What happened to the bid between 2008 and 2024?", None),  # a span, not the event's time
        ("What will NATO decide in July 2024?", None),  # looking ahead: earlier articles may well say
        ("What is NATO expected to offer Ukraine in 2024?", None),
        ("What was decided about the NATO-Ukraine Council?", None),
        ("Was the NATO-Ukraine Council postponed until 2031?", None),  # a target date, not the event's time
        ("What has NATO done for Ukraine since 2014?", None),
    ],
)
def test_the_period_a_past_tense_question_names(question, start):
    assert asked_period_start(question) == start


def test_articles_all_published_before_the_asked_period_cannot_report_it():
    q = "What did NATO leaders decide about Ukraine at the Washington summit in July 2024?"
    always = _model({}, bias=5.0)  # evidence strong enough on every other signal
    early = decide(
        always,
        *_evidence(
            q, [("a", "Ukraine hopes for a far-reaching step at the Washington summit.", 0.8)], dated="2024-03-19"
        ),
        None,
        None,
    )
    assert not early.answer and early.reason.startswith("the closest articles were all published before July 2024")
    after = decide(
        always,
        *_evidence(
            q,
            [("a", "At the Washington summit NATO leaders decided on a bridge to membership.", 0.8)],
            dated="2024-07-11",
        ),
        None,
        None,
    )
    assert after.answer
    undated = decide(
        always,
        *_evidence(q, [("a", "Ukraine hopes for a far-reaching step at the Washington summit.", 0.8)], dated=None),
        None,
        None,
    )
    assert undated.answer  # an undated article could be from any time
    ahead = "What will NATO leaders decide about Ukraine at the Washington summit in July 2024?"
    assert decide(
        always,
        *_evidence(
            ahead, [("a", "Ukraine hopes for a far-reaching step at the Washington summit.", 0.8)], dated="2024-03-19"
        ),
        None,
        None,
    ).answer


def test_a_count_asked_for_and_no_number_in_the_best_sentences_is_refused_whatever_the_model_says():
    always = _model({}, bias=5.0)
    q = "What is the budget of NATO's multi-year program for Ukraine?"
    none = decide(
        always,
        *_evidence(q, [("a", "Stoltenberg expects the alliance to agree a multi-year program for Ukraine.", 0.8)]),
        None,
        None,
    )
    assert not none.answer and none.reason == "no amount that answers the question appears in the closest passages"
    stated = decide(
        always,
        *_evidence(q, [("a", "The multi-year program for Ukraine has a budget of $500 million.", 0.8)]),
        None,
        None,
    )
    assert stated.answer
    # Persons, places and dates are found by looser rules: their absence stays a feature, not a refusal.
    who = "Who leads NATO's multi-year program for Ukraine?"
    assert decide(
        always, *_evidence(who, [("a", "the alliance agreed a multi-year program for ukraine.", 0.8)]), None, None
    ).answer


def test_model_file_round_trips_and_bad_files_are_clear_errors(tmp_path):
    model = _model({"strength": 3.0}, bias=-1.0, threshold=0.4)
    path = tmp_path / "decision.json"
    model.save(path)
    again = load_model(path=path)
    assert again.threshold == 0.4 and again.weights == model.weights
    assert load_model(index_dir=tmp_path).threshold == 0.4  # the index's own calibration wins over the packaged one
    packaged = load_model(index_dir=tmp_path / "none")
    assert packaged.features == BASE_FEATURES  # no reader loaded: the model fitted without its scores
    path.write_text(
        json.dumps(
            {
                "features": ["strength", "made_up"],
                "weights": [1, 2],
                "bias": 0,
                "mean": [0, 0],
                "scale": [1, 1],
                "threshold": 0.5,
                "confident": 0.9,
            }
        )
    )
    with pytest.raises(BadInputError, match="rerun `rag calibrate`"):
        load_model(path=path)
    with pytest.raises(BadInputError, match="does not exist"):
        load_model(path=tmp_path / "missing.json")


def _rows(n: int = 200) -> list[Row]:
    import random

    rng = random.Random(3)
    rows = []
    for i in range(n):
        label = i % 2
        values = dict.fromkeys(FEATURES, 0.0)
        values["strength"] = rng.gauss(0.7 if label else 0.45, 0.08)
        values["type_top3"] = float(label or rng.random() < 0.3)
        rows.append(Row(id=str(i), source="a" if i < n // 2 else "b", variant="gold", label=label, features=values))
    return rows


def test_fit_learns_the_signals_and_chooses_a_threshold_on_the_curve():
    rows = _rows()
    model = fit(rows, min_answered=0.9)
    weights = dict(zip(model.features, model.weights))
    assert weights["strength"] > 0 and weights["type_top3"] > 0
    points = {p["threshold"]: p for p in curve(rows, [model.threshold])}
    assert points[model.threshold]["answered_of_answerable"] >= 0.9
    assert points[model.threshold]["balanced_accuracy"] > 0.8
    assert model.confident >= model.threshold
    assert choose_threshold(rows, 1.01) == 0.05  # nothing keeps every answer: the lowest point, not a crash


def test_fit_refuses_one_class():
    rows = [r for r in _rows() if r.label]
    with pytest.raises(ValueError, match="both"):
        fit(rows)


def test_split_is_fixed_and_disjoint():
    a, b = split([f"q{i}" for i in range(11)])
    assert a.isdisjoint(b) and len(a | b) == 11 and (a, b) == split([f"q{i}" for i in reversed(range(11))])


def test_an_article_date_counts_as_a_mention_of_its_month_and_year():
    from rag.answer.evidence import meta_text
    from rag.verify.support import missing_terms

    dated = "NATO met and decided things. " + meta_text(ArticleMeta(title="NATO talks", date="2024-03-05"))
    assert missing_terms("What did NATO decide in March 2024?", [dated]) == []
    assert missing_terms("What did NATO decide in March 2024?", ["NATO met and decided things."]) == ["2024", "March"]


def test_collect_labels_questions_as_the_pipeline_would_answer_them(settings, hashing_embedder, prompts, corpus_copy):
    from rag.answer.pipeline import Pipeline
    from rag.evaluate.calibrate import collect
    from rag.evaluate.questions import EvalQuestion
    from rag.ingest.indexing import index_paths
    from tests.fakes import strength_rule

    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    pipeline = Pipeline(settings, index, hashing_embedder, None, prompts, strength_rule())
    questions = [
        EvalQuestion(
            id="a",
            question="How many allies will Ukraine sit with as an equal at the NATO-Ukraine Council?",
            must_include=[["31"]],
            gold_docs=["001_d33884d0ecc97606", "000_ff6882ef16d64a7d"],
        ),
        EvalQuestion(id="u", question="What is the population of Ukraine?", must_include=[]),
    ]
    rows = collect(pipeline, questions, source="nato")
    by = {(r.id, r.variant): r for r in rows}
    assert set(by) == {("a", "gold"), ("a", "leave_gold_out"), ("u", "gold")}
    assert by[("a", "gold")].label == 1 and by[("a", "leave_gold_out")].label == 0 and by[("u", "gold")].label == 0
    assert set(by[("a", "gold")].features) == set(FEATURES)


def test_the_reader_reads_the_best_sentences_and_its_scores_become_features(
    settings, hashing_embedder, prompts, corpus_copy
):
    from rag.answer.pipeline import Pipeline
    from rag.ingest.indexing import index_paths
    from tests.fakes import KeywordReader

    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    reader = KeywordReader("31")
    narrow = settings.model_copy(update={"reader_sentences": 3})
    pipeline = Pipeline(
        narrow, index, hashing_embedder, None, prompts, _model({"reader_best": 10.0}, bias=-5.0), reader=reader
    )
    q = "How many allies will Ukraine sit with as an equal at the NATO-Ukraine Council?"
    found = pipeline.gather(q, mode="extractive", top_k=None, since=None, until=None, as_of=date(2023, 7, 20))
    question, texts = reader.calls[-1]
    assert question == q and len(texts) == 3  # only the best few by word and cosine match are read
    read = [s for s in found.evidence.sentences if s.reader is not None]
    assert len(read) == 3 and max(read, key=lambda s: s.reader).reader == 0.9
    assert found.decision.features["reader_best"] == 0.9 and found.decision.answer
    # Read with the article's title before the sentence, as in training.
    titles = {sp.passage.meta.title for sp in found.evidence.sources if sp.passage.meta.title}
    assert any(t.split(". ")[0] in titles for t in texts)
    unread = Pipeline(narrow, index, hashing_embedder, None, prompts, _model({"reader_best": 10.0}, bias=-5.0)).gather(
        q, mode="extractive", top_k=None, since=None, until=None, as_of=date(2023, 7, 20)
    )
    assert unread.decision.features["reader_best"] == 0.0 and not unread.decision.answer


def test_a_decision_fitted_with_the_reader_refuses_to_load_without_it(tmp_path):
    path = tmp_path / "decision.json"
    _model({"reader_best": 3.0}).save(path)
    with pytest.raises(BadInputError, match="make reader"):
        load_model(path=path)
    assert load_model(path=path, reader=True).needs_reader


def test_an_abstention_the_reader_explains_says_so_in_words():
    q = "Who chaired the summit?"
    ev, scored = _evidence(q, [("a", "The summit was chaired by Jens Stoltenberg in Vilnius.", 0.7)])
    for s in ev.sentences:
        s.reader = 0.12
    verdict = decide(_model({"reader_best": 10.0}, bias=-5.0), ev, scored, None, None)
    assert not verdict.answer
    assert verdict.reason.startswith("no retrieved sentence reads as an answer to the question (reader 0.12")
