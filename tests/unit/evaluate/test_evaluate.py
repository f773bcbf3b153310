"""The eval harness on fakes: matching rules, verdicts, figures, question-file validation, baseline gate, SQuAD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import BadInputError
from rag.core.types import Answer, AnswerSentence, Citation, Passage, ScoredPassage, Timings
from rag.evaluate.harness import QualityRegressionError, judge, run_eval
from rag.evaluate.questions import EvalQuestion, load_questions
from rag.evaluate.scoring import (
    SUMMARY_KEYS,
    compare,
    contains,
    figures,
    lexical_support,
    missing_groups,
    normalise,
    percentile,
    split_figures,
)
from rag.evaluate.squad import doc_id_for, export_squad, slugify
from rag.ingest.indexing import index_paths
from tests.conftest import CORPUS, ROOT
from tests.fakes import ScriptedGenerator, strength_rule

COUNCIL = (
    "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council, giving the country an equal seat at "
    "the table with the 31 allies."
)


def always(ok: bool):
    return lambda claim, quote: (ok, 1.0 if ok else 0.0)


def q(**fields) -> EvalQuestion:
    base = {
        "id": "x1",
        "question": "What was decided?",
        "must_include": [["council"], ["equal", "full"]],
        "gold_docs": ["doc_a"],
        "type": "single",
    }
    return EvalQuestion.model_validate({**base, **fields})


def answer(
    text: str = "",
    *,
    abstained: bool = False,
    cited: list[tuple[str, str, str]] = (),
    docs: list[str] = ("doc_b", "doc_a"),
    total_s: float = 1.0,
) -> Answer:
    """cited: (sentence, quote, doc_id) triples, one citation each."""
    sources = [
        ScoredPassage(
            passage=Passage(passage_id=f"{d}#0", doc_id=d, ordinal=0, text="t", start=0, end=1),
            score=1.0 / rank,
            rank=rank,
        )
        for rank, d in enumerate(docs, start=1)
    ]
    sentences = [AnswerSentence(text=s, citations=[n]) for n, (s, _, _) in enumerate(cited, start=1)]
    citations = [
        Citation(number=n, doc_id=d, passage_id=f"{d}#0", quote=quote, start=0, end=len(quote))
        for n, (_, quote, d) in enumerate(cited, start=1)
    ]
    if not text:
        text = " ".join(f"{s} [{n}]" for n, (s, _, _) in enumerate(cited, start=1))
    return Answer(
        question="q",
        standalone_question="q",
        text=text,
        mode="extractive",
        abstained=abstained,
        sentences=sentences,
        citations=citations,
        sources=sources,
        timings=Timings(total_s=total_s, retrieval_s=0.1),
    )


# --------------------------------------------------------------------------------------------- matching
def test_normalise_folds_case_punctuation_whitespace_and_accents():
    assert normalise('  The NATO–Ukraine\tCouncil,\n"equal" seat!  ') == "the nato ukraine council equal seat"
    assert normalise("Kraków’s 180,000 people") == "krakow s 180000 people"


def test_contains_matches_at_word_starts_and_whole_numbers():
    assert contains("Security Guarantees were raised.", "security guarantee")
    assert contains("the NATO-Ukraine council", "nato ukraine council")
    assert contains("It's   Kuleba.", "KULEBA")
    assert not contains("a senator spoke", "nato")
    assert contains("the 31 allies", "31") and not contains("the 131 allies", "31") and not contains("in 310 BC", "31")
    assert contains("Ukraine says 180,000 consumers", "180000")


def test_citation_markers_do_not_count_as_answer_text():
    assert missing_groups("Two diplomats said so [1].", [["two", "2"]]) == []
    assert missing_groups("Diplomats said so [2].", [["two", "2"]]) == [["two", "2"]]
    assert missing_groups("Something [unsupported]", [["unsupported"]]) == [["unsupported"]]


# --------------------------------------------------------------------------------------------- verdicts
def test_correct_answer():
    r = judge(q(), answer(cited=[(COUNCIL, COUNCIL, "doc_a")]), always(True))
    assert r.verdict.correct and r.verdict.passed and r.verdict.abstain == "right" and not r.verdict.missing
    assert r.gold_rank == 2 and r.verdict.gold_cited
    assert r.citations[0].verifier_ok and r.citations[0].lexical_ok


def test_incorrect_answer_names_the_missing_group():
    text = "The council commission will meet later Thursday."
    r = judge(q(), answer(cited=[(text, text, "doc_b")]), always(True))
    assert r.verdict.correct is False and not r.verdict.passed
    assert r.verdict.missing == [["equal", "full"]] and r.verdict.gold_cited is False


def test_abstaining_on_an_answerable_question_is_wrong():
    r = judge(q(), answer("The articles don't say.", abstained=True), always(True))
    assert r.verdict.correct is False and r.verdict.abstain == "wrong" and r.verdict.gold_cited is None


def test_abstaining_on_an_unanswerable_question_is_right_and_answering_it_wrong():
    unanswerable = q(must_include=[], gold_docs=[], type="unanswerable")
    r = judge(unanswerable, answer("The articles don't say.", abstained=True), always(True))
    assert r.verdict.passed and r.verdict.abstain == "right" and r.verdict.correct is None
    r = judge(unanswerable, answer(cited=[(COUNCIL, COUNCIL, "doc_a")]), always(True))
    assert not r.verdict.passed and r.verdict.abstain == "wrong"


def test_error_is_recorded_and_scored_wrong():
    r = judge(q(), None, always(True), error="GeneratorError: server down")
    assert r.error and not r.verdict.passed and r.verdict.correct is False


def test_lexical_check_is_independent_of_the_verifier():
    assert lexical_support("The council gives Ukraine an equal seat.", COUNCIL)[0]
    assert not lexical_support("Penguins chair the council in Antarctica.", COUNCIL)[0]
    assert not lexical_support("The council gives Ukraine a seat with the 45 allies.", COUNCIL)[
        0
    ]  # number not in quote
    r = judge(q(), answer(cited=[("Penguins chair the council equally.", COUNCIL, "doc_a")]), always(True))
    assert r.citations[0].verifier_ok and not r.citations[0].lexical_ok


# --------------------------------------------------------------------------------------------- figures
def test_figures_over_hand_made_records():
    un = q(id="u", must_include=[], gold_docs=[], type="unanswerable")
    records = [
        judge(
            q(id="a"), answer(cited=[(COUNCIL, COUNCIL, "doc_a")], docs=["doc_a"], total_s=1.0), always(True)
        ),  # right, rank 1
        judge(
            q(id="b"), answer(cited=[(COUNCIL, "Nothing alike here at all.", "doc_b")], total_s=2.0), always(False)
        ),  # right text, bad citation, rank 2
        judge(
            q(id="c"), answer("x", abstained=True, docs=["doc_b"], total_s=3.0), always(True)
        ),  # wrong abstention, gold missing
        judge(un, answer("x", abstained=True, total_s=4.0), always(True)),  # right abstention
        judge(
            un.model_copy(update={"id": "u2"}), answer(cited=[(COUNCIL, COUNCIL, "doc_a")], total_s=5.0), always(True)
        ),  # should abstain
    ]
    f = figures(records, k=5)
    assert f["n"] == 5 and f["n_answerable"] == 3 and f["n_unanswerable"] == 2
    assert f["answer_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert f["abstain_precision"] == 0.5 and f["abstain_recall"] == 0.5
    assert f["citation_validity"] == pytest.approx(2 / 3, abs=1e-4) and f["citation_validity_lexical"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert f["gold_doc_cited"] == 0.5  # a cites doc_a, b cites doc_b; c abstained and is not counted
    assert f["hit_at_1"] == pytest.approx(1 / 3, abs=1e-4) and f["hit_at_5"] == pytest.approx(2 / 3, abs=1e-4)
    assert f["mrr"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert f["latency_p50_s"] == 3.0 and f["latency_p95_s"] == pytest.approx(4.8)
    assert f["ttft_p50_s"] is None and f["prompt_tokens_mean"] is None  # extractive: no generation
    summary, details = split_figures(f)
    assert list(summary) == list(SUMMARY_KEYS) and "citation_validity_lexical" in details and "n" not in details


def test_left_out_answers_that_still_hold_the_reference_are_counted_apart():
    from rag.evaluate.questions import leave_gold_out

    asked = leave_gold_out(
        [q(id="a"), q(id="b"), q(id="c"), q(id="u", must_include=[], gold_docs=[], type="unanswerable")]
    )
    assert [x.id for x in asked] == ["a", "b", "c"]  # unanswerable questions drop out
    assert all(x.should_abstain and x.left_out == frozenset({"doc_a"}) for x in asked)
    records = [
        judge(asked[0], answer(cited=[(COUNCIL, COUNCIL, "doc_b")]), always(True)),  # another article says it
        judge(
            asked[1],
            answer(cited=[("The talks ended without a plan.", "The talks ended without a plan.", "doc_b")]),
            always(True),
        ),  # wrong
        judge(asked[2], answer("x", abstained=True), always(True)),  # the right behaviour
    ]
    f = figures(records, k=5)
    assert f["abstain_recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert f["left_out_answered_with_reference"] == 1


def test_percentile_matches_linear_interpolation():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


# --------------------------------------------------------------------------------------------- question files
def write_lines(path: Path, lines: list) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8"
    )
    return path


GOOD = {
    "id": "a",
    "question": "Who?",
    "answer": "Kuleba",
    "must_include": [["kuleba"]],
    "gold_docs": ["002_e0b0d12e770a7305"],
    "type": "single",
}


def test_unknown_fields_are_kept_and_history_parsed(tmp_path):
    row = {
        **GOOD,
        "source": "hand-written",
        "difficulty": 3,
        "history": [
            {"role": "user", "content": "Who is the foreign minister?"},
            {"role": "assistant", "content": "Kuleba."},
        ],
    }
    (question,) = load_questions(write_lines(tmp_path / "q.jsonl", ["", row, "  "]))
    assert question.model_extra == {"source": "hand-written", "difficulty": 3}
    assert question.history[1].role == "assistant"
    record = judge(question, None, always(True))
    assert record.extra == {"source": "hand-written", "difficulty": 3}


def test_malformed_lines_are_reported_with_line_numbers(tmp_path):
    lines = [
        GOOD,
        '{"id": "b", "question": ',  # 2: broken JSON
        {**GOOD, "id": "c", "must_include": ["kuleba"]},  # 3: a group that is not a list
        {**GOOD, "id": "a"},  # 4: duplicate id
        {**GOOD, "id": "d", "question": "  "},  # 5: empty question
        '["not", "an", "object"]',  # 6
        {**GOOD, "id": "e", "must_include": [[]]},  # 7: empty group
        {**GOOD, "id": "f", "history": [{"role": "robot", "content": "hi"}]},  # 8
    ]
    with pytest.raises(BadInputError) as info:
        load_questions(write_lines(tmp_path / "q.jsonl", lines))
    message = str(info.value)
    for number in (2, 3, 4, 5, 6, 7, 8):
        assert f"line {number}:" in message
    assert "line 1:" not in message and "duplicate id 'a' (first on line 1)" in message


def test_missing_empty_and_too_long_question_files(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(BadInputError, match="no questions"):
        load_questions(write_lines(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(BadInputError, match="line 1: question has 50 characters"):
        load_questions(write_lines(tmp_path / "long.jsonl", [{**GOOD, "question": "x" * 50}]), max_question_chars=20)


def test_bundled_question_set_is_well_formed():
    questions = load_questions(ROOT / "data" / "questions" / "nato_questions.jsonl")
    dev = load_questions(ROOT / "data" / "questions" / "dev_questions.jsonl")
    by_id = {x.id: x for x in questions}
    assert len(questions) >= len(dev) + 30
    assert all(by_id[d.id].model_dump() == d.model_dump() for d in dev)  # the dev questions, unchanged
    docs = {p.stem for p in CORPUS.glob("*.txt")}
    assert all(set(x.gold_docs) <= docs and bool(x.gold_docs) != x.should_abstain for x in questions)
    share = sum(x.should_abstain for x in questions) / len(questions)
    assert 0.2 <= share <= 0.4
    assert {"single", "multi", "date", "number", "unanswerable", "followup"} <= {x.type for x in questions}
    assert sum(bool(x.history) for x in questions) >= 3


# --------------------------------------------------------------------------------------------- baseline gate
def test_baseline_regression_detection():
    base = dict.fromkeys(SUMMARY_KEYS, 0.8) | {"n": 10, "latency_p50_s": 1.0}
    same = compare(base, base, 0.05)
    assert not any(c.regressed for c in same)
    worse = base | {"answer_accuracy": 0.70, "mrr": 0.76, "latency_p50_s": 9.0}
    rows = {c.figure: c for c in compare(worse, base, 0.05)}
    assert rows["answer_accuracy"].regressed and rows["answer_accuracy"].delta == pytest.approx(-0.1)
    assert not rows["mrr"].regressed  # within tolerance
    assert not rows["latency_p50_s"].regressed and not rows["latency_p50_s"].gated  # latency is not gated
    assert not {c.figure: c for c in compare(base | {"hit_at_1": 0.75}, base, 0.05)}[
        "hit_at_1"
    ].regressed  # exactly the tolerance
    assert not {c.figure: c for c in compare(base | {"abstain_precision": None}, base, 0.05)}[
        "abstain_precision"
    ].regressed
    assert {c.figure: c for c in compare(worse, base, 0.2)}["answer_accuracy"].regressed is False


# --------------------------------------------------------------------------------------------- whole runs on fakes
@pytest.fixture
def fake_pipeline(settings, hashing_embedder, prompts, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    loose = settings.model_copy(update={"support_threshold": 0.5})
    return Pipeline(loose, index, hashing_embedder, ScriptedGenerator(COUNCIL + " [1]"), prompts, strength_rule())


def test_run_writes_reports_and_gates_on_a_baseline(tmp_path, settings, fake_pipeline):
    questions = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": "c",
                "question": "What was decided about the NATO-Ukraine Council?",
                "must_include": [["council"], ["equal"]],
                "gold_docs": ["001_d33884d0ecc97606"],
                "type": "single",
                "note": "kept",
            },
            {
                "id": "h",
                "question": "What did NATO decide at its 2025 summit in The Hague?",
                "must_include": [],
                "gold_docs": [],
                "type": "unanswerable",
            },
        ],
    )
    outcome = run_eval(settings, questions, out_dir=tmp_path / "out", mode="generate", pipeline=fake_pipeline)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(report["summary"]) == list(SUMMARY_KEYS)
    s = report["summary"]
    assert s["n"] == 2 and s["answer_accuracy"] == 1.0 and s["abstain_precision"] == 1.0 and s["abstain_recall"] == 1.0
    assert s["citation_validity"] == 1.0 and s["gold_doc_cited"] == 1.0 and s["prompt_tokens_mean"] > 0
    assert set(report["by_type"]) == {"single", "unanswerable"} and report["run"]["mode"] == "generate"
    assert report["questions"][0]["extra"] == {"note": "kept"} and report["questions"][0]["retrieved"][0]["rank"] == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert (
        md == outcome.markdown
        and "| answer accuracy (answerable) | 1.000 |" in md
        and "## Failed questions (0 of 2)" in md
    )
    outcome.raise_for_regressions()  # no baseline, nothing to raise

    better = json.loads(json.dumps(report))
    better["summary"]["answer_accuracy"] = 1.0
    better["summary"]["hit_at_1"] = 1.5  # unreachable: any real run is "worse"
    (tmp_path / "base.json").write_text(json.dumps(better))
    gated = run_eval(
        settings,
        questions,
        out_dir=tmp_path / "out2",
        mode="generate",
        pipeline=fake_pipeline,
        baseline_path=tmp_path / "base.json",
    )
    assert [c.figure for c in gated.regressions] == ["hit_at_1"]
    assert "dropped: hit_at_1" in gated.markdown and json.loads((tmp_path / "out2" / "report.json").read_text())[
        "baseline"
    ]["regressed"] == ["hit_at_1"]
    with pytest.raises(QualityRegressionError, match=r"hit_at_1 1\.500 -> 1\.000"):
        gated.raise_for_regressions()


def test_failed_questions_are_listed_with_what_went_wrong(tmp_path, settings, fake_pipeline):
    questions = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": "w",
                "question": "What was decided about the NATO-Ukraine Council?",
                "must_include": [["penguin"]],
                "gold_docs": ["002_e0b0d12e770a7305"],
                "type": "single",
            },
        ],
    )
    md = run_eval(settings, questions, out_dir=tmp_path / "out", mode="generate", pipeline=fake_pipeline).markdown
    assert "## Failed questions (1 of 1)" in md and "**w** (single)" in md
    assert 'answer lacks "penguin"' in md and "no citation points to a gold document" in md


def test_bad_input_stops_before_any_model_loads(tmp_path, settings, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("models must not load")

    monkeypatch.setattr(Pipeline, "from_settings", boom)
    bad = write_lines(tmp_path / "q.jsonl", [GOOD, '{"id": 3}'])
    with pytest.raises(BadInputError, match="line 2"):
        run_eval(settings, bad, out_dir=tmp_path / "out")
    good = write_lines(tmp_path / "ok.jsonl", [GOOD])
    with pytest.raises(BadInputError, match="baseline"):
        run_eval(settings, good, out_dir=tmp_path / "out", baseline_path=tmp_path / "missing.json")
    (tmp_path / "notreport.json").write_text("[1, 2]")
    with pytest.raises(BadInputError, match="summary"):
        run_eval(settings, good, out_dir=tmp_path / "out", baseline_path=tmp_path / "notreport.json")
    for options in ({"mode": "poetry"}, {"top_k": 0}, {"tolerance": 2.0}):
        with pytest.raises(BadInputError):
            run_eval(settings, good, out_dir=tmp_path / "out", **options)


# --------------------------------------------------------------------------------------------- SQuAD adapter
def squad_file(tmp_path: Path) -> Path:
    def qa(i, impossible, answers=()):
        return {
            "id": f"q{i}",
            "question": f"Question {i}?",
            "is_impossible": impossible,
            "answers": [{"text": a, "answer_start": 0} for a in answers],
        }

    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Sky_(United_Kingdom)",
                "paragraphs": [
                    {
                        "context": "Sky plc is a British broadcaster.\nIt was founded in 1990.",
                        "qas": [qa(1, False, ["1990", "in 1990", "1990"]), qa(2, True)],
                    },
                    {
                        "context": "Sky launched digital services in 1998.",
                        "qas": [qa(3, False, ["1998"]), qa(4, True), qa(5, True)],
                    },
                ],
            },
            {
                "title": "Kraków",
                "paragraphs": [
                    {
                        "context": "Kraków is a city in Poland on the Vistula.",
                        "qas": [qa(6, False, ["Poland"]), qa(7, True), qa(8, False, ["Vistula", "the Vistula"])],
                    }
                ],
            },
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad_export_writes_every_paragraph_and_a_question_file(tmp_path):
    from rag.ingest.corpus import load_article

    result = export_squad(squad_file(tmp_path), tmp_path / "out")
    assert result.paragraphs == 3 and result.answerable == 4 and result.unanswerable == 4
    assert slugify("Sky_(United_Kingdom)") == "sky_united_kingdom" and doc_id_for("Kraków", 0) == "squad_krakow_0"
    article = load_article(tmp_path / "out" / "corpus" / "squad_sky_united_kingdom_0.txt")
    assert article.meta.title == "Sky (United Kingdom), paragraph 0"
    assert article.text == "Sky plc is a British broadcaster. It was founded in 1990."
    questions = {x.id: x for x in load_questions(result.questions_path)}
    assert questions["q1"].must_include == [["1990", "in 1990"]] and questions["q1"].gold_docs == [
        "squad_sky_united_kingdom_0"
    ]
    assert (
        questions["q2"].should_abstain
        and questions["q2"].gold_docs == []
        and questions["q2"].model_extra["squad_paragraph"] == "squad_sky_united_kingdom_0"
    )
    assert questions["q8"].gold_docs == ["squad_krakow_0"] and questions["q8"].type == "single"


def test_squad_sampling_is_seeded_and_keeps_the_whole_corpus(tmp_path):
    path = squad_file(tmp_path)

    def ids(out: str, **kw) -> list[str]:
        result = export_squad(path, tmp_path / out, **kw)
        assert result.paragraphs == 3
        return [json.loads(line)["id"] for line in result.questions_path.read_text().splitlines()]

    assert ids("a", limit=4, seed=1) == ids("b", limit=4, seed=1)
    assert len(ids("c", limit=4, seed=1)) == 4
    half = ids("d", limit=4, seed=2, unanswerable_share=0.25)
    assert sum(i in {"q2", "q4", "q5", "q7"} for i in half) == 1
    with pytest.raises(BadInputError):
        export_squad(path, tmp_path / "e", limit=0)
    with pytest.raises(BadInputError, match="data"):
        export_squad(write_lines(tmp_path / "x.json", [{"version": "v2.0"}]), tmp_path / "f")


def test_a_generator_failure_costs_one_question_and_a_missing_generator_stops_the_run(
    tmp_path, settings, fake_pipeline
):
    from rag.core.errors import GeneratorError, ModelMissingError
    from rag.evaluate.report import render_markdown

    class Down(ScriptedGenerator):
        def stream(self, *a, **k):
            raise GeneratorError("server down")

    questions = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": f"c{i}",
                "question": "What was decided about the NATO-Ukraine Council?",
                "must_include": [["penguin"]],
                "gold_docs": [],
                "type": "single",
            }
            for i in range(3)
        ],
    )
    fake_pipeline.generator = Down()
    outcome = run_eval(settings, questions, out_dir=tmp_path / "out", mode="generate", pipeline=fake_pipeline)
    assert outcome.report["details"]["n_errors"] == 3 and "GeneratorError: server down" in outcome.markdown
    assert "… and 2 more in report.md" in render_markdown(outcome.report, failed_limit=1)
    assert "more in report.md" not in outcome.markdown  # the written report lists every failure

    fake_pipeline.generator = None
    with pytest.raises(ModelMissingError, match="--mode extractive"):
        run_eval(settings, questions, out_dir=tmp_path / "out", mode="generate", pipeline=fake_pipeline)
    assert (
        run_eval(settings, questions, out_dir=tmp_path / "out", mode="extractive", pipeline=fake_pipeline).report[
            "run"
        ]["generator"]
        is None
    )
