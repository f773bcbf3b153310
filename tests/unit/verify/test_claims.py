"""The claim check: per-quote stance and verdict (rag/verify/claims.py) and `check_claim` over a tmp index with
the hashing embedder and a keyword judge (rag/answer/claims.py). No model is loaded."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import BadInputError
from rag.ingest.indexing import index_paths
from rag.models.judge import Relation
from rag.verify.claims import (
    JUDGED,
    LEXICAL,
    QuoteSignals,
    claim_verdict,
    grounded,
    lexical_conflict,
    matching_clause,
    stance,
)
from tests.fakes import KeywordJudge, strength_rule

COUNCIL = (
    "The NATO-Ukraine Commission, which will meet later Thursday, is set to be upgraded to a NATO-Ukraine Council, "
    "giving the country an equal seat at the table with the 31 allies."
)
CLAIM = "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council."
ENTAILS = Relation(entail=0.8, contradict=0.1, neutral=0.1)
CLASHES = Relation(entail=0.1, contradict=0.8, neutral=0.1)


def signals(lexical=0.9, grounded=True, conflict=None, relation=None) -> QuoteSignals:
    return QuoteSignals(lexical=lexical, grounded=grounded, conflict=conflict, relation=relation)


def test_negation_on_one_side_is_a_conflict_but_not_in_another_clause():
    assert lexical_conflict("The Commission is not set to be upgraded to a Council.", COUNCIL) == "negation"
    quote = "NATO agreed in 2008 that Ukraine would join the organization one day, but did not set a date for it."
    assert matching_clause("In 2008 NATO agreed that Ukraine would one day join the organization.", quote).startswith(
        "NATO agreed in 2008"
    )
    assert lexical_conflict("In 2008 NATO agreed that Ukraine would one day join the organization.", quote) is None


def test_numbers_and_names_match_exactly():
    assert lexical_conflict("An anonymous bidder paid $9 million for lunch.", "A bidder paid $19 million.") == "number"
    assert lexical_conflict("The NATO-Russia Commission is set to be upgraded.", COUNCIL) == "name"
    assert grounded(CLAIM, COUNCIL)
    assert not grounded("The NATO-Russia Commission is set to be upgraded.", COUNCIL)


def test_stance_needs_a_related_quote_whatever_the_judge_says():
    assert stance(signals(lexical=0.2, relation=CLASHES), JUDGED) == "neutral"
    assert stance(signals(lexical=0.2, relation=ENTAILS), JUDGED) == "neutral"


def test_stance_with_judge_and_lexical_checks():
    assert stance(signals(relation=ENTAILS), JUDGED) == "supports"
    assert stance(signals(relation=CLASHES), JUDGED) == "contradicts"
    # The judge's entailment does not outvote a clash words can see, nor a claim fact missing from the quote.
    assert stance(signals(conflict="negation", relation=ENTAILS), JUDGED) == "contradicts"
    assert stance(signals(grounded=False, relation=ENTAILS), JUDGED) != "supports"


def test_stance_lexical_only():
    assert stance(signals(), LEXICAL) == "supports"
    assert stance(signals(conflict="number"), LEXICAL) == "contradicts"
    assert stance(signals(grounded=False), LEXICAL) == "neutral"


def test_verdict_prefers_support_and_cites_strongest_first():
    quotes = [
        signals(lexical=0.7, relation=CLASHES),
        signals(lexical=0.85, relation=ENTAILS),
        signals(lexical=0.95, relation=ENTAILS),
    ]
    assert claim_verdict(quotes, JUDGED) == ("supported", [2, 1])
    assert claim_verdict([quotes[0]], JUDGED) == ("contradicted", [0])
    assert claim_verdict([], JUDGED) == ("not_found", [])


@pytest.fixture
def pipeline(settings, hashing_embedder, prompts, corpus_copy) -> Pipeline:
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    return Pipeline(settings, index, hashing_embedder, None, prompts, strength_rule())


def test_check_claim_lexical_only_says_so_and_cites_the_article(pipeline):
    pipeline.use_judge(None, "no judge here")
    check = pipeline.check(CLAIM)
    assert check.verdict == "supported" and check.judge is None and check.note == "no judge here"
    c = check.citations[0]
    assert c.stance == "supports" and c.doc_id == "001_d33884d0ecc97606" and c.entail is None
    assert c.title and c.date and c.span[1] > c.span[0] and c.doc_id in pipeline.index.manifest.documents
    negated = pipeline.check("The NATO-Ukraine Commission is not set to be upgraded to a NATO-Ukraine Council.")
    assert negated.verdict == "contradicted"
    assert pipeline.check("Penguins opened a bakery on the moon.").verdict == "not_found"


def test_check_claim_with_judge_reads_several_candidates(pipeline):
    judge = KeywordJudge(entails=("upgraded to a nato-ukraine council",))
    pipeline.use_judge(judge)
    check = pipeline.check(CLAIM)
    assert check.verdict == "supported" and check.judge == "keyword-judge" and check.note is None
    assert check.citations[0].entail == pytest.approx(0.9)
    claim, quotes = judge.calls[0]
    assert claim == CLAIM and len(quotes) > 1 and len({q.split(". ")[0] for q in quotes}) > 1  # several articles


def test_check_claim_refuses_bad_input_before_retrieving(pipeline):
    pipeline.use_judge(None)
    with pytest.raises(BadInputError):
        pipeline.check("   ")
    with pytest.raises(BadInputError):
        pipeline.check(CLAIM, since="2023-07-01", until="2023-06-01")
