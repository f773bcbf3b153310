"""From retrieved passages to the evidence a question is answered from: scored sentences, deduplicated
sources within a token budget, and how strongly the evidence answers the question at all."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import numpy as np

from rag.core.settings import Settings
from rag.core.types import ArticleMeta, Evidence, EvidenceSentence, ScoredPassage
from rag.models.embedding import Embedder
from rag.text.sentences import split_sentences
from rag.text.timeframe import TimeFrame, named_periods, period_words, time_fit
from rag.text.tokens import content_terms
from rag.verify.support import DENSE_SHARE, IdfFn, coverage, missing_terms, question_terms

# What a sentence from an article outside the question's time keeps of its relevance at the least (`standing`).
TIME_FLOOR = 0.5
TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    return int(len(text.split()) * 1.35) + 1


def meta_text(meta: ArticleMeta) -> str:
    """An article's title, source, author and date in words: a question may name them ("the May 2023 report")."""
    parts = [meta.title or "", meta.source or "", meta.author or ""]
    if meta.date:
        try:
            d = date.fromisoformat(meta.date[:10])
            parts.append(f"{d.day} {d.strftime('%B')} {d.year}")
        except ValueError:
            parts.append(meta.date)
    return " ".join(p for p in parts if p)


_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
    r"(?:previous|prior|above|earlier|preceding|foregoing|system|original)\s+(?:instructions?|prompts?|messages?|context|rules)\b"
    r"|\b(?:ignore|disregard)\s+(?:all|any)\s+(?:instructions?|prompts?)\b"
    r"|\byou are now (?:an? |the )?(?:ai|assistant|chatbot|language model|llm)\b"
    r"|<\|[\w-]+\|>|\[/?INST\]|<</?SYS>>",
    re.I,
)


def is_instruction(text: str) -> bool:
    return bool(_INSTRUCTION.search(text))


_QUESTION_END = re.compile(r"\?[\"'”’)\]]*\s*$")


def is_question(text: str) -> bool:
    """A sentence that asks states nothing to cite; and a quiz-like headline that restates the reader's question
    scores as the best evidence there is while holding no answer."""
    return bool(_QUESTION_END.search(text))


def _sentences_of(scored: list[ScoredPassage]) -> list[EvidenceSentence]:
    """Sentences of the passages in rank order, each once (overlapping chunks repeat sentences)."""
    seen: set[tuple[str, int]] = set()
    out: list[EvidenceSentence] = []
    for sp in scored:
        p = sp.passage
        for start, end in split_sentences(p.text):
            key = (p.doc_id, p.start + start)
            if key in seen or is_instruction(p.text[start:end]) or is_question(p.text[start:end]):
                continue
            seen.add(key)
            out.append(
                EvidenceSentence(
                    text=p.text[start:end],
                    doc_id=p.doc_id,
                    passage_id=p.passage_id,
                    start=p.start + start,
                    end=p.start + end,
                )
            )
    return out


def standing(sentence: EvidenceSentence) -> float:
    """Its relevance, discounted when its article lies outside the time the question names ("this week"): the
    order in which the decision and the extractive answer consider sentences. A closer match from six weeks
    earlier must not outrank the week's own report of the event."""
    return sentence.relevance * (TIME_FLOOR + (1 - TIME_FLOOR) * sentence.timely)


def date_sentences(sentences: list[EvidenceSentence], scored: list[ScoredPassage], frame: TimeFrame | None) -> None:
    """Set each sentence's `timely` from its article's date and the question's time (rag/text/timeframe.py)."""
    if frame is None or not frame.has_cue:
        return
    dates = {sp.passage.passage_id: sp.passage.meta.date for sp in scored}
    for sentence in sentences:
        sentence.timely = time_fit(dates.get(sentence.passage_id), frame)


def dated_terms(question: str, scored: list[ScoredPassage]) -> dict[str, set[str]]:
    """Per passage, the question's period words its article's date stands for (rag/text/timeframe.period_words):
    left out of the question's terms wherever the passage's coverage is measured. A question spanning several
    named periods ("between March 2024 and May 2024") has each one settled by any retrieved article dated in it."""
    dates = {sp.passage.passage_id: sp.passage.meta.date for sp in scored}
    if not named_periods(question):
        return {}
    if len(named_periods(question)) > 1:
        shared = content_terms(period_words(question, list(dates.values())))
        return dict.fromkeys(dates, shared)
    return {pid: content_terms(period_words(question, [day])) for pid, day in dates.items()}


def _near_duplicate(a: set[str], b: set[str], threshold: float) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold


def select_evidence(
    question: str,
    scored: list[ScoredPassage],
    embedder: Embedder,
    settings: Settings,
    count_tokens: TokenCounter = estimate_tokens,
    query_vector: np.ndarray | None = None,
    idf: IdfFn | None = None,
) -> Evidence:
    sentences = _sentences_of(scored)
    if not sentences:
        return Evidence(
            question=question, sources=[], sentences=[], strength=0.0, missing_terms=missing_terms(question, [])
        )
    q_vec = query_vector if query_vector is not None else embedder.embed([question])[0]
    s_vecs = embedder.embed([s.text for s in sentences])
    dense = s_vecs @ q_vec
    terms = question_terms(question)
    tokens = [content_terms(s.text) for s in sentences]
    dated = dated_terms(question, scored)
    for i, sentence in enumerate(sentences):
        # A sentence's neighbours in its passage often carry the subject it leaves implicit.
        window = set(tokens[i])
        for j in (i - 1, i + 1):
            if 0 <= j < len(sentences) and sentences[j].passage_id == sentence.passage_id:
                window |= tokens[j]
        sentence.dense = float(dense[i])
        # The period its article is dated in is settled: the sentence is judged on the question's other words.
        sentence.coverage = coverage(terms - dated.get(sentence.passage_id, set()), window, idf)
        sentence.relevance = float(DENSE_SHARE * sentence.dense + (1 - DENSE_SHARE) * sentence.coverage)

    # Drop near-duplicate sentences (syndicated copies of one wire story) keeping the first, best-ranked one.
    kept: list[int] = []
    for i in range(len(sentences)):
        if not any(_near_duplicate(tokens[i], tokens[j], settings.near_duplicate_threshold) for j in kept):
            kept.append(i)
    sentences = [sentences[i] for i in kept]

    # Fill the prompt budget: passages in rank order, each trimmed to its sentences worth the room.
    budget = settings.context_token_budget
    chosen: set[tuple[str, int]] = set()
    by_passage: dict[str, list[EvidenceSentence]] = {}
    for s in sentences:
        by_passage.setdefault(s.passage_id, []).append(s)
    ranked = sorted(sentences, key=lambda s: -s.relevance)
    used = 0
    for s in ranked:
        cost = count_tokens(s.text) + 2
        if used + cost > budget:
            continue
        chosen.add((s.passage_id, s.start))
        used += cost
    sources = [
        sp
        for sp in scored
        if any((sp.passage.passage_id, s.start) in chosen for s in by_passage.get(sp.passage.passage_id, []))
    ]
    selected = [s for s in sentences if (s.passage_id, s.start) in chosen]
    strength = max((s.relevance for s in sentences), default=0.0)
    return Evidence(
        question=question,
        sources=sources,
        sentences=selected,
        prompt_tokens_estimate=used,
        strength=strength,
        missing_terms=missing_terms(question, [sp.passage.text + " " + meta_text(sp.passage.meta) for sp in scored]),
    )
