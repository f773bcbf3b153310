"""The two answers that need no model: a refusal, and the best evidence sentences quoted verbatim."""

from __future__ import annotations

from rag.answer.quoting import extract_sentences, is_timeline, timeline_sentences
from rag.core.settings import Settings
from rag.core.types import Answer, AnswerSentence, Evidence, QuoteReason
from rag.models.prompts import PromptSet
from rag.verify.citations import CitationBuilder, render_answer, without_markers


def abstain(answer: Answer, reason: str, prompts: PromptSet) -> Answer:
    answer.abstained = True
    answer.abstain_reason = reason
    answer.written_by = "nobody"
    answer.quoted_because = None
    answer.text = prompts.abstain.render(topic="")
    answer.sentences, answer.citations = [], []
    return answer


def quote(answer: Answer, evidence: Evidence, because: QuoteReason, settings: Settings, prompts: PromptSet) -> Answer:
    """Quote the best sentences verbatim: faithful by construction, and no model needed."""
    if is_timeline(evidence.question):
        picked = timeline_sentences(
            evidence,
            {sp.passage.passage_id: sp.passage.meta.date for sp in evidence.sources},
            settings.extractive_max_sentences + 2,
        )
    else:
        picked = extract_sentences(evidence, settings.extractive_max_sentences)
    if not picked:
        return abstain(answer, "no sentence of the evidence answers the question", prompts)
    builder = CitationBuilder(evidence.sources)
    answer.sentences = [
        AnswerSentence(
            text=without_markers(s.text), citations=[builder.cite(s, s.relevance)], supported=True, support=s.relevance
        )
        for s in picked
    ]
    answer.citations = builder.citations
    answer.text = render_answer(answer.sentences)
    answer.written_by, answer.quoted_because = "quotes", because
    return answer
