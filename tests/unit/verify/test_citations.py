"""Citations: one number per passage with every quote under it (#17 item 4), and markers credited to the
sentence they follow (#17 item 10). Hand-made evidence, a hashing embedder: no model, no index."""

from __future__ import annotations

import pytest

from api.routes.openai_compat import content_with_sources
from rag.cli.asking import print_answer
from rag.core.types import Answer, ArticleMeta, Evidence, EvidenceSentence, Passage, ScoredPassage
from rag.evaluate.harness import check_citations
from rag.verify.citations import CitationBuilder, CitationVerifier, split_claims

COUNCIL = "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council with an equal seat for Kyiv."
SUPPORT = "NATO provides only nonlethal support to Kyiv, although allies individually supply weapons."
VILNIUS = "Leaders of the alliance will gather for a summit in Vilnius in July."


def passage(doc_id: str, *sentences: str, title: str) -> tuple[ScoredPassage, list[EvidenceSentence]]:
    text = " ".join(sentences)
    meta = ArticleMeta(title=title, source="Wire", date="2023-06-15")
    sp = ScoredPassage(
        passage=Passage(
            passage_id=f"{doc_id}#0", doc_id=doc_id, ordinal=0, text=text, start=0, end=len(text), meta=meta
        ),
        score=1.0,
    )
    spans, at = [], 0
    for s in sentences:
        start = text.index(s, at)
        spans.append(
            EvidenceSentence(
                text=s, doc_id=doc_id, passage_id=f"{doc_id}#0", start=start, end=start + len(s), relevance=1.0
            )
        )
        at = start + len(s)
    return sp, spans


@pytest.fixture
def evidence() -> Evidence:
    a, a_sentences = passage("doc_a", COUNCIL, SUPPORT, title="Alliance upgrades ties")
    b, b_sentences = passage("doc_b", VILNIUS, COUNCIL, title="Summit ahead")
    return Evidence(question="What did NATO decide about Ukraine?", sources=[a, b], sentences=a_sentences + b_sentences)


@pytest.fixture
def verifier(settings, hashing_embedder) -> CitationVerifier:
    return CitationVerifier(hashing_embedder, settings.model_copy(update={"support_threshold": 0.5}))


def test_two_sentences_of_one_passage_share_one_number_and_both_quotes(evidence, verifier):
    sentences, citations = verifier.verify(f"{COUNCIL} [1] {SUPPORT} [1] {VILNIUS} [2]", evidence)
    assert [s.citations for s in sentences] == [[1], [1], [2]]
    assert [c.passage_id for c in citations] == ["doc_a#0", "doc_b#0"]
    first = citations[0]
    assert [q.text for q in first.quotes] == [COUNCIL, SUPPORT]
    assert (first.quote, first.start, first.end) == (
        COUNCIL,
        first.quotes[0].start,
        first.quotes[0].end,
    )  # the old shape
    text = evidence.sources[0].passage.text
    assert all(text[q.start : q.end] == q.text for q in first.quotes)


def test_builder_numbers_per_passage_and_keeps_a_quote_once(evidence):
    builder = CitationBuilder(evidence.sources)
    council_a, support_a, vilnius_b, council_b = evidence.sentences
    assert [builder.cite(s, 0.9) for s in (support_a, vilnius_b, council_a, support_a, council_b)] == [1, 2, 1, 1, 2]
    assert [[q.text for q in c.quotes] for c in builder.citations] == [[SUPPORT, COUNCIL], [VILNIUS, COUNCIL]]


def test_eval_replays_each_sentence_against_the_quote_that_backs_it(evidence, verifier):
    sentences, citations = verifier.verify(f"{COUNCIL} [1] {SUPPORT} [1]", evidence)
    answer = Answer(
        question="q", standalone_question="q", text="", mode="generate", sentences=sentences, citations=citations
    )
    checks = check_citations(answer, lambda claim, quote: (claim == quote, 1.0 if claim == quote else 0.0))
    assert [(c.number, c.quote, c.verifier_ok) for c in checks] == [(1, COUNCIL, True), (1, SUPPORT, True)]


def test_sources_list_each_passage_once_with_its_quotes(evidence, verifier, capsys):
    sentences, citations = verifier.verify(f"{COUNCIL} [1] {SUPPORT} [1] {VILNIUS} [2]", evidence)
    answer = Answer(
        question="q", standalone_question="q", text="x", mode="generate", sentences=sentences, citations=citations
    )
    chat = content_with_sources(answer).split("\n\nSources:\n", 1)[1]
    assert chat.count("Alliance upgrades ties") == 1 and chat.count("Summit ahead") == 1
    assert chat.index(COUNCIL) < chat.index(SUPPORT) < chat.index("[2] Summit ahead")
    print_answer(answer)
    cli = capsys.readouterr().out
    assert cli.count("Alliance upgrades ties") == 1 and cli.count("[2]") == 1
    assert f'"{SUPPORT}"' in " ".join(cli.split())


# --- markers after the full stop ------------------------------------------------------------------------------


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before_it():
    assert split_claims("NATO met. [1] Kyiv spoke. [2]") == [("NATO met.", [1]), ("Kyiv spoke.", [2])]
    assert split_claims("NATO met [1]. Kyiv spoke [2].") == [("NATO met.", [1]), ("Kyiv spoke.", [2])]
    assert split_claims("[3] NATO met. Kyiv spoke. [1, 2]") == [("NATO met.", [3]), ("Kyiv spoke.", [1, 2])]


def test_the_model_marker_after_the_full_stop_picks_among_equal_sources(evidence, verifier):
    # COUNCIL is in both passages, so only the model's marker says which one it read; it wrote "[2]" after it.
    sentences, citations = verifier.verify(f"{COUNCIL} [2] {SUPPORT} [1]", evidence)
    by_number = {c.number: c.passage_id for c in citations}
    assert [by_number[s.citations[0]] for s in sentences] == ["doc_b#0", "doc_a#0"]
