"""The bundled NATO questions through the real models: what the product promises a reader."""

from __future__ import annotations

import json
import re

import pytest

from rag.text.tokens import tokenize
from rag.verify.citations import facts_grounded
from tests.conftest import ROOT

QUESTIONS = [
    json.loads(line) for line in (ROOT / "data/questions/dev_questions.jsonl").read_text().splitlines() if line.strip()
]
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def answers(real_pipeline):
    return {q["id"]: real_pipeline.ask(q["question"]) for q in QUESTIONS}


def test_council_question_cites_a_council_article(answers):
    answer = answers["d01"]
    assert not answer.abstained
    assert {c.doc_id for c in answer.citations} & COUNCIL_DOCS
    assert "council" in answer.text.lower()


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_answer_behaviour(q, answers):
    answer = answers[q["id"]]
    if not q["must_include"]:
        assert answer.abstained, f"should abstain: {answer.text}"
        assert not answer.citations
        return
    assert not answer.abstained, answer.abstain_reason
    text = _norm(answer.text)
    for group in q["must_include"]:
        assert any(_norm(alt) in text for alt in group), f"missing {group} in {answer.text}"


def test_every_shown_citation_supports_its_sentence(answers, real_pipeline):
    shown = 0
    for answer in answers.values():
        by_number = {c.number: c for c in answer.citations}
        retrieved = {sp.passage.passage_id for sp in answer.sources}
        for sentence in answer.sentences:
            for n in sentence.citations:
                c = by_number[n]
                shown += 1
                assert c.passage_id in retrieved
                article = real_pipeline.index.articles[c.doc_id].text
                assert article[c.start : c.end] == c.quote and all(article[q.start : q.end] == q.text for q in c.quotes)
                # The citation is a passage; one of its quotes must back the sentence, as a reader checks it.
                (ok, score), quote = max(
                    (real_pipeline.verifier.supports(sentence.text, q.text), q.text) for q in c.all_quotes()
                )
                assert ok, (sentence.text, quote, score)
                assert facts_grounded(sentence.text, quote)
                overlap = set(tokenize(sentence.text)) & set(tokenize(quote))
                assert len(overlap) >= min(3, len(set(tokenize(sentence.text))))
    assert shown > 0
