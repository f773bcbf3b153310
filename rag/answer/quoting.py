"""Which evidence sentences an answer quotes, and in what order: the extractive answer, the sentences a model is
shown, and the quote that closes a generated answer all take them from here."""

from __future__ import annotations

import re

from rag.answer.evidence import standing
from rag.core.types import Evidence, EvidenceSentence
from rag.text.answer_types import has_answer_type, question_type
from rag.text.timeframe import as_date
from rag.text.tokens import content_terms
from rag.verify.support import coverage, question_terms

# Among sentences nearly as relevant as the best, one holding the kind of answer asked for (a date for
# "when") comes first; the bonus is smaller than the relevance gap that separates a topical sentence from an
# unrelated one, so it reorders near-ties only.
TYPE_BONUS = 0.08
# Asked for by its words: "how did X develop / change", "timeline of", "chronology". Not by "between X and Y":
# "who won the final between Spain and England?" names two sides of one event, and read as a timeline it was
# answered by the oldest article (the preview) first.
_TIMELINE = re.compile(
    r"\bhow (?:did|has|have|do|does) .{3,80}? (?:develop|change|evolve|unfold|progress)|\btimeline\b|\bchronology\b",
    re.I,
)


def ranking_key(sentence: EvidenceSentence, kind, question: str, reader_weight: float = 0.0) -> float:
    read = reader_weight * sentence.reader if sentence.reader is not None else 0.0
    return standing(sentence) + read + (TYPE_BONUS if kind and has_answer_type(sentence.text, kind, question) else 0.0)


def extract_sentences(evidence: Evidence, limit: int) -> list[EvidenceSentence]:
    """The most relevant sentence, then others nearly as relevant that add facts it does not state."""
    kind = question_type(evidence.question)
    # Each sentence's key once (it runs the answer-type patterns); the sort is stable on equal keys.
    ranked = sorted(
        ((ranking_key(s, kind, evidence.question, evidence.reader_weight), s) for s in evidence.sentences),
        key=lambda ks: -ks[0],
    )
    if not ranked:
        return []
    best, first = ranked[0]
    terms = question_terms(evidence.question)
    picked = [first]
    covered = content_terms(first.text)
    for key, s in ranked[1:]:
        if len(picked) >= limit or key < 0.85 * best:
            break
        # One term function on both sides: the question's terms are stemmed, so the sentence's must be too.
        terms_of_s = content_terms(s.text)
        new = terms_of_s - covered
        if len(new) >= 3 and coverage(terms, terms_of_s) > 0:
            picked.append(s)
            covered |= new
    return picked


def states_typed_answer(evidence: Evidence) -> bool:
    """The question asks for a person, date, place, number or amount, and the best sentence holds one."""
    kind = question_type(evidence.question)
    if kind is None or not evidence.sentences:
        return False
    best = max(evidence.sentences, key=lambda s: ranking_key(s, kind, evidence.question, evidence.reader_weight))
    return has_answer_type(best.text, kind, evidence.question)


def is_timeline(question: str) -> bool:
    return bool(_TIMELINE.search(question))


def timeline_sentences(evidence: Evidence, dates: dict[str, str | None], limit: int) -> list[EvidenceSentence]:
    """ "How did X develop": the best sentence of each dated article that is about X, oldest first."""
    ranked = sorted(evidence.sentences, key=lambda s: -s.relevance)
    if not ranked:
        return []
    floor = 0.8 * ranked[0].relevance
    per_article: dict[str, EvidenceSentence] = {}
    for s in ranked:
        if s.relevance >= floor and s.doc_id not in per_article and as_date(dates.get(s.passage_id)):
            per_article[s.doc_id] = s
    if len(per_article) < 2:
        return extract_sentences(evidence, limit)
    ordered = sorted(per_article.values(), key=lambda s: (as_date(dates.get(s.passage_id)), s.start))
    return ordered[:limit]
