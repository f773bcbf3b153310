"""Questions about the reporting itself ("which outlet reported X?"): parsed, judged on X, answered from metadata."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.answer.provenance import attribution, credits, outlet_scope, parse_provenance, record_holds
from rag.core.types import ArticleMeta, Citation, StoryCopy
from rag.evaluate.harness import check_citations
from rag.ingest.indexing import index_paths
from tests.fakes import ScriptedGenerator, strength_rule

UPGRADE = "Which outlet reported that the NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council?"


@pytest.mark.parametrize(
    ("question", "field", "claim"),
    [
        (UPGRADE, "source", "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council?"),
        ("Which newspapers covered the Oslo meeting?", "source", "The Oslo meeting?"),
        (
            "According to which outlet is Ukraine preparing a summer offensive?",
            "source",
            "Is Ukraine preparing a summer offensive?",
        ),
        ("In which publication was the plan for a council first reported?", "source", "The plan for a council?"),
        ("Which outlet is the story about the Vilnius summit from?", "source", "The Vilnius summit?"),
        ("When was the article about Estonia's proposal published?", "date", "Estonia's proposal?"),
        ("When was it reported that Kyiv wants a far-reaching step?", "date", "Kyiv wants a far-reaching step?"),
        ("What is the headline of the story about the Ukraine-NATO Council?", "title", "The Ukraine-NATO Council?"),
        ("Which article mentions the summer offensive?", "title", "The summer offensive?"),
        ("When did the Libertarian Institute publish its piece on the NATO upgrade?", "date", "The NATO upgrade?"),
    ],
)
def test_questions_about_the_reporting_are_split_into_field_and_claim(question, field, claim):
    asked = parse_provenance(question)
    assert asked is not None and (asked.field, asked.claim) == (field, claim)
    assert asked.outlet == ("Libertarian Institute" if "Libertarian" in question else None)


@pytest.mark.parametrize(
    "question",
    [
        "What was decided about the NATO-Ukraine Council?",
        # SQuAD's: the text names the writer or publisher asked for, the page has none.
        "Who wrote that imperialism is the highest stage of capitalism?",
        "Who published the State of the Planet 2008-2009 report?",
        "In which magazine did Oppenheimer defend the consensus approach?",
        # An agency or a network in the news is usually what the text is about, not its publisher.
        "Which agency reported the inflation figure?",
        "Which outlet reported it?",  # nothing left to look for
    ],
)
def test_other_questions_are_not_about_the_reporting(question):
    assert parse_provenance(question) is None


def test_credits_names_the_outlets_a_sentence_cites():
    assert credits("Estonia plans to push NATO at the meeting, Bloomberg reported, noting the upgrade.") == [
        "Bloomberg"
    ]
    assert credits("Stoltenberg spoke in Oslo, as reported by European Pravda") == ["European Pravda"]
    assert credits("He reported to the council. The newspaper writes that talks went on.") == []


def test_attribution_says_what_is_on_record_and_what_is_not():
    asked = parse_provenance(UPGRADE)
    meta = ArticleMeta(source="Libertarian Institute", date="2023-05-08", title="Upgrade")
    line, lead = attribution(asked, meta, "The upgrade is planned, Bloomberg reported.")
    assert (
        line == "Libertarian Institute reported it on 8 May 2023, citing Bloomberg: “The upgrade is planned, Bloomberg "
        "reported.”"
    )
    assert lead == "Libertarian Institute reported it on 8 May 2023, citing Bloomberg:"
    assert attribution(asked, ArticleMeta(title="Upgrade"), "X.")[0].startswith(
        "The outlet is not on record; the article “Upgrade” reports it"
    )
    copies = [
        StoryCopy(doc_id="b", source="AP", date="2023-05-09"),
        StoryCopy(doc_id="c", source="Libertarian Institute"),
    ]
    assert attribution(asked, meta, "X.", copies)[0].startswith(
        "Libertarian Institute reported it on 8 May 2023 (also carried by AP on 9 May 2023): “X.”"
    )
    when = parse_provenance("When was the article about the upgrade published?")
    assert attribution(when, ArticleMeta(source="Reuters"), "X.")[0].startswith(
        "The article that reports it carries no date (Reuters)"
    )


@pytest.fixture
def build(settings, hashing_embedder, prompts):
    def make(paths, *replies: str, threshold: float = 0.2) -> tuple[Pipeline, ScriptedGenerator]:
        index, _ = index_paths(settings, hashing_embedder, paths)
        gen = ScriptedGenerator(*(replies or ("unused",)))
        return Pipeline(settings, index, hashing_embedder, gen, prompts, strength_rule(threshold)), gen

    return make


def test_the_outlet_of_the_article_stating_the_claim_is_the_answer(build, corpus_copy):
    pipeline, gen = build([corpus_copy])
    answer = pipeline.ask(UPGRADE, mode="generate")
    assert not answer.abstained, answer.abstain_reason
    assert answer.text.startswith("The Independent reported it on 15 June 2023: “"), answer.text
    assert answer.citations[0].doc_id == "001_d33884d0ecc97606" and "Council" in answer.citations[0].quote
    assert (
        answer.quoted_because == "reporting_question" and not gen.calls
    )  # metadata, quoted: nothing for a model to write


def test_a_claim_no_article_states_is_refused(build, corpus_copy):
    pipeline, _ = build([corpus_copy])
    answer = pipeline.ask(
        "Which newspaper reported that the Netherlands pledged fighter jets to Ukraine?", mode="extractive"
    )
    assert answer.abstained and "Netherlands" in (answer.abstain_reason or "")


def test_without_the_field_on_record_the_question_is_answered_from_the_text(build, tmp_path):
    page = tmp_path / "pages" / "press.txt"
    page.parent.mkdir()
    page.write_text(
        "History of the press\n\nThe Pentagon Papers were published by The New York Times in 1971. "
        "The newspaper printed the first installment in June, and other papers followed within days.\n"
    )
    pipeline, _ = build([page.parent])
    assert pipeline.index.articles["press"].meta.source is None
    answer = pipeline.ask("Which newspaper published the Pentagon Papers?", mode="extractive")
    assert not answer.abstained and "New York Times" in answer.text and "reported it" not in answer.text


def test_the_lead_of_an_attribution_is_checked_against_the_cited_record():
    cited = Citation(
        number=1,
        doc_id="a",
        passage_id="a#0",
        source="Libertarian Institute",
        date="2023-05-08",
        quote="The upgrade is planned, Bloomberg reported.",
        start=0,
        end=10,
        also_in=[StoryCopy(doc_id="b", source="AP", date="2023-05-09")],
    )
    assert record_holds(
        "Libertarian Institute reported it on 8 May 2023 (also carried by AP on 9 May 2023), citing Bloomberg:", cited
    )
    assert not record_holds("Reuters reported it on 8 May 2023:", cited)
    assert not record_holds("Libertarian Institute reported it on 18 May 2023:", cited)


def test_eval_checks_an_attribution_by_its_record_and_its_quote(build, corpus_copy):
    pipeline, _ = build([corpus_copy])
    answer = pipeline.ask(UPGRADE, mode="extractive")
    line = answer.sentences[0]
    assert line.record == "The Independent reported it on 15 June 2023:" and line.text.startswith(line.record)
    supports = lambda claim, quote: (claim.strip() == quote.strip(), 1.0)
    assert all(c.verifier_ok and c.lexical_ok for c in check_citations(answer, supports))
    answer.sentences[0] = line.model_copy(
        update={"text": line.text.replace("15 June", "16 June"), "record": line.record.replace("15 June", "16 June")}
    )
    assert not any(c.verifier_ok or c.lexical_ok for c in check_citations(answer, supports))


def test_a_headline_that_states_the_claim_names_its_article_even_when_no_sentence_does(build, corpus_copy):
    pipeline, _ = build([corpus_copy], threshold=5.0)  # a decision that refuses everything
    headline = "NATO debates ways to boost ties with Ukraine as war against Russian invasion drags on"
    answer = pipeline.ask(
        "When was the article about NATO debates on ways to boost ties with Ukraine published?", mode="extractive"
    )
    assert not answer.abstained and answer.text.startswith("The Independent published it on 15 June 2023: “"), (
        answer.text
    )
    assert answer.citations[0].title == headline
    # A reader's paraphrase changes word endings the stemmer keeps apart ("debating", "debates").
    paraphrased = pipeline.ask(
        "When was the article about NATO debating ways of boosting ties with Ukraine published?", mode="extractive"
    )
    assert paraphrased.text.startswith("The Independent published it on 15 June 2023: “"), paraphrased.text
    vague = pipeline.ask(
        "When was the article about Ukraine published?", mode="extractive"
    )  # too few words to name one
    assert vague.abstained


OUTLETS = {"Euractiv", "The Independent", "Reuters", "European Pravda", "AP"}


@pytest.mark.parametrize(
    ("question", "scoped"),
    [
        (
            "What was Ukraine preparing for, according to the sources cited by Euractiv?",
            ("What was Ukraine preparing for?", "Euractiv"),
        ),
        ("According to Reuters, what is Ukraine working to secure?", ("What is Ukraine working to secure?", "Reuters")),
        (
            "Which part of Ukraine has been annexed, according to The Independent?",
            ("Which part of Ukraine has been annexed?", "The Independent"),
        ),
        ("What did Stoltenberg say in the European Pravda article?", ("What did Stoltenberg say?", "European Pravda")),
        (
            "What did Reuters report about the Washington summit?",
            ("What was reported about the Washington summit?", "Reuters"),
        ),
        # The report as a point in time, an outlet not indexed, a word that is also an outlet's name:
        ("How many months before the Euractiv report had Ukraine made its bid to join NATO?", None),
        ("According to Bloomberg, what does Estonia plan?", None),
        ("What did the auditors find, according to the independent commission?", None),
        ("What happened at the APEC summit?", None),
    ],
)
def test_a_question_scoped_to_an_indexed_outlet_loses_the_phrase(question, scoped):
    assert outlet_scope(question, OUTLETS) == scoped


def test_a_scoped_question_is_asked_of_that_outlets_articles_only(build, corpus_copy):
    pipeline, _ = build([corpus_copy])
    answer = pipeline.ask(
        "According to The Independent, what is the NATO-Ukraine Commission set to become?", mode="extractive"
    )
    assert not answer.abstained and {c.doc_id for c in answer.citations} == {"001_d33884d0ecc97606"}
    assert {sp.passage.doc_id for sp in answer.sources} == {"001_d33884d0ecc97606"}
    elsewhere = pipeline.ask("According to Reuters, what did Stoltenberg call the most urgent task?", mode="extractive")
    assert all(sp.passage.doc_id == "002_e0b0d12e770a7305" for sp in elsewhere.sources)
    assert elsewhere.abstained and "only Reuters’ articles were searched" in (elsewhere.abstain_reason or ""), (
        elsewhere.abstain_reason
    )


def test_when_a_named_outlet_published_its_piece_is_looked_up_in_its_articles(build, corpus_copy):
    pipeline, _ = build([corpus_copy])
    answer = pipeline.ask(
        "When did the Independent publish its story on the NATO-Ukraine Commission being upgraded to a council?",
        mode="extractive",
    )
    assert answer.text.startswith("The Independent published it on 15 June 2023: “"), answer.text
    assert {sp.passage.doc_id for sp in answer.sources} == {"001_d33884d0ecc97606"}
    # A publisher that is no indexed outlet: the question is about the text, not about our articles' dates.
    other = pipeline.ask(
        "When did NATO publish its report on the NATO-Ukraine Commission being upgraded to a council?",
        mode="extractive",
    )
    assert "published it on" not in other.text and len({sp.passage.doc_id for sp in other.sources}) > 1


def test_the_article_a_question_names_by_its_headline_answers_first_or_alone(build, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "named.txt").write_text(
        "Allies weigh a council for Ukraine\nPublished 2023-06-10\nhttps://www.dailyone.com/2023/06/10/council/\n\n"
        "Diplomats met on Monday in Brussels. They discussed many topics, a council among them, over a long lunch.\n"
    )
    (pages / "echo.txt").write_text(
        "Summit notes from the week\nPublished 2023-06-12\nhttps://www.dailytwo.com/2023/06/12/notes/\n\n"
        "Allies weigh a council for Ukraine, and allies weigh a council for Ukraine again at the summit in Vilnius.\n"
    )
    pipeline, _ = build([pages])
    when = pipeline.ask("When was the article about Allies weigh a council for Ukraine published?", mode="extractive")
    assert [c.doc_id for c in when.citations] == ["named"], when.text  # "the article": the one so headlined
    assert when.text.startswith("dailyone.com published it on 10 June 2023: “")
    outlets = pipeline.ask("Which outlet reported that Allies weigh a council for Ukraine?", mode="extractive")
    assert [c.doc_id for c in outlets.citations][:1] == ["named"], outlets.text  # first, then others that say it
