"""Checking a claim against the archive (`rag check`, POST /v1/check): retrieve the claim's nearest passages
from several articles, rank their sentences as evidence for a question is ranked, measure each of the best
against the claim (rag/verify/claims.py: lexical checks, and the judge when one is built) and return the
verdict with the quotes that decide it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from rag.answer.evidence import standing
from rag.answer.requests import check_request
from rag.core.settings import Settings
from rag.core.types import EvidenceSentence, ScoredPassage
from rag.models.judge import Judge, judge_text, settings_judge
from rag.search.periods import parse_date
from rag.text.timeframe import parse_as_of
from rag.verify.citations import CitationVerifier
from rag.verify.claims import (
    JUDGED,
    LEXICAL,
    ClaimThresholds,
    QuoteSignals,
    Verdict,
    claim_verdict,
    grounded,
    lexical_conflict,
)

if TYPE_CHECKING:
    from rag.answer.pipeline import Pipeline

# Sentences judged per claim: the best by evidence standing, from every retrieved passage (~20 pairs cost the
# judge tens of milliseconds on 2 cores).
CANDIDATES = 16
NO_JUDGE_NOTE = (
    "no judge (off unless RAG_USE_JUDGE=true or RAG_JUDGE_PATH is set, and built by `make judge`): word checks "
    "only, negation and swaps are read by words alone"
)


class ClaimCitation(BaseModel):
    """A quote that decides the verdict, with where it is and how it was read."""

    stance: Literal["supports", "contradicts"]
    quote: str = Field(description="the article sentence, verbatim")
    span: tuple[int, int] = Field(description="[start, end) of the quote in the cleaned article text")
    doc_id: str
    passage_id: str
    title: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None
    lexical: float = Field(description="lexical support score of the quote for the claim (0..1)")
    entail: float | None = Field(None, description="the judge's P(quote entails claim); null without a judge")
    contradict: float | None = Field(None, description="the judge's P(quote contradicts claim); null without a judge")


class ClaimCheck(BaseModel):
    claim: str
    verdict: Verdict
    citations: list[ClaimCitation]
    judge: str | None = Field(description="the judge model's name, or null when the check ran on lexical checks only")
    note: str | None = Field(None, description="why the check ran without a judge, when it did")
    candidates: int = Field(description="sentences the claim was checked against")
    as_of: str


@dataclass
class Candidate:
    sentence: EvidenceSentence
    passage: ScoredPassage
    signals: QuoteSignals


def load_claim_judge(settings: Settings) -> tuple[Judge | None, str | None]:
    """The judge the settings name, or None and the note that says the check is on word checks only."""
    judge = settings_judge(settings)
    return (judge, None) if judge is not None else (None, NO_JUDGE_NOTE)


def measure(
    claim: str,
    sentences: list[EvidenceSentence],
    passages: dict[str, ScoredPassage],
    verifier: CitationVerifier,
    judge: Judge | None,
) -> list[Candidate]:
    """The signals of each sentence against the claim: lexical score, facts, clashes and the judge's relation."""
    if not sentences:
        return []
    lexical = dict(verifier.best_support([claim], sentences)[0])
    metas = [passages[s.passage_id].passage.meta for s in sentences]
    relations = (
        judge.relation(claim, [judge_text(m.title, s.text, m.date) for m, s in zip(metas, sentences)])
        if judge is not None
        else [None] * len(sentences)
    )
    out = []
    for i, (s, m, r) in enumerate(zip(sentences, metas, relations)):
        signals = QuoteSignals(
            lexical=round(float(lexical.get(i, 0.0)), 4),
            grounded=grounded(claim, f"{m.title or ''}. {s.text}"),
            conflict=lexical_conflict(claim, s.text),
            relation=r,
        )
        out.append(Candidate(sentence=s, passage=passages[s.passage_id], signals=signals))
    return out


def gather_candidates(
    pipeline: Pipeline,
    claim: str,
    *,
    judge: Judge | None,
    top_k: int | None = None,
    since: str | date | None = None,
    until: str | date | None = None,
    as_of: str | date | None = None,
) -> tuple[list[Candidate], date]:
    """The claim's best sentences from its retrieved passages, measured; and the as-of date used."""
    claim = pipeline.check_question(claim)
    as_of_d, _ = parse_as_of(as_of)
    found = pipeline.gather(
        claim,
        mode="extractive",
        top_k=top_k,
        since=parse_date(since, field="since"),
        until=parse_date(until, field="until"),
        as_of=as_of_d,
    )
    best = sorted(found.evidence.sentences, key=lambda s: -standing(s))[:CANDIDATES]
    passages = {sp.passage.passage_id: sp for sp in found.scored}
    return measure(claim, best, passages, pipeline.verifier, judge), as_of_d


def cite(candidate: Candidate, stance: Literal["supports", "contradicts"]) -> ClaimCitation:
    s, meta, r = candidate.sentence, candidate.passage.passage.meta, candidate.signals.relation
    return ClaimCitation(
        stance=stance,
        quote=s.text,
        span=(s.start, s.end),
        doc_id=s.doc_id,
        passage_id=s.passage_id,
        title=meta.title,
        source=meta.source,
        date=meta.date,
        url=meta.url,
        lexical=candidate.signals.lexical,
        entail=None if r is None else round(r.entail, 4),
        contradict=None if r is None else round(r.contradict, 4),
    )


def check_claim(
    pipeline: Pipeline,
    claim: str,
    *,
    judge: Judge | None,
    note: str | None = None,
    top_k: int | None = None,
    since: str | None = None,
    until: str | None = None,
    as_of: str | None = None,
    thresholds: ClaimThresholds | None = None,
) -> ClaimCheck:
    """The archive's verdict on a claim with the quotes that decide it. `judge` None: lexical checks only."""
    check_request(pipeline.settings, claim, top_k=top_k, since=since, until=until, as_of=as_of)
    candidates, as_of_d = gather_candidates(
        pipeline, claim, judge=judge, top_k=top_k, since=since, until=until, as_of=as_of
    )
    t = thresholds or (JUDGED if judge is not None else LEXICAL)
    verdict, chosen = claim_verdict([c.signals for c in candidates], t)
    stance = "supports" if verdict == "supported" else "contradicts"
    return ClaimCheck(
        claim=pipeline.check_question(claim),
        verdict=verdict,
        citations=[cite(candidates[i], stance) for i in chosen],
        judge=None if judge is None else judge.name,
        note=None if judge is not None else (note or NO_JUDGE_NOTE),
        candidates=len(candidates),
        as_of=as_of_d.isoformat(),
    )
