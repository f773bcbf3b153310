"""A claim against the archive's sentences: for each candidate quote, whether it supports, contradicts or says
nothing about the claim; then the archive's verdict, `supported`, `contradicted` or `not_found`.

Two kinds of evidence are combined, because neither is enough alone:
- the lexical checks of rag/verify (support.py, citations.py): how closely a quote matches the claim (embedding
  cosine and term coverage, `CitationVerifier.best_support`), whether every number and name of the claim is in
  it, and clashes words can see (a negation on one side only, a number or name the quote does not have);
- the judge (rag/models/judge.py), when one is built: entail / contradict / neutral probabilities. The packaged
  judge is weak (it over-predicts "contradict"), so its word counts only for a quote that is about the claim
  (lexical score at least `related`), and a quote supports only when it also carries the claim's facts.

Without a judge the verdict is the lexical checks' alone, and says so (`ClaimThresholds` per mode). The
thresholds were tuned on data/claims/claims_dev.jsonl only by bench/check_claims.py (docs/judge-check.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rag.models.judge import CONTRADICTED, NOT_FOUND, SUPPORTED, Relation
from rag.text.patterns import names_in, numbers_in
from rag.text.tokens import content_terms
from rag.verify.support import acronym_present, word_vocabulary

Stance = Literal["supports", "contradicts", "neutral"]
Verdict = Literal["supported", "contradicted", "not_found"]
Conflict = Literal["negation", "number", "name"]
VERDICTS: tuple[Verdict, ...] = (SUPPORTED, CONTRADICTED, NOT_FOUND)  # type: ignore[assignment]
# Quotes cited for a verdict at most: the few that decide it, best first.
MAX_CITED = 3

_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot|won't|can't|isn't|aren't|wasn't|weren't|"
    r"doesn't|don't|didn't|hasn't|haven't|hadn't|shouldn't|wouldn't|couldn't|mustn't|unlikely)\b|n't\b",
    re.I,
)


@dataclass(frozen=True)
class ClaimThresholds:
    """related: lexical score a quote needs to count as about the claim at all; lexical_support: the lexical
    score that supports (alone without a judge; as a floor beside the judge's entailment with one); support and
    contradict: the judge's entail / contradict probabilities; conflict: the lexical score from which a clash
    of negation, number or name reads as a contradiction (a quote that close is about the same event)."""

    related: float
    lexical_support: float
    support: float
    contradict: float
    conflict: float


# Tuned on data/claims/claims_dev.jsonl only, by `python bench/check_claims.py --split dev --tune` (and
# `--no-judge` for LEXICAL): see docs/judge-check.md. `contradict` above 1 turns the judge's contradiction off.
JUDGED = ClaimThresholds(related=0.65, lexical_support=0.75, support=-0.08, contradict=0.5, conflict=0.65)
LEXICAL = ClaimThresholds(related=0.4, lexical_support=0.8, support=1.0, contradict=1.01, conflict=0.6)


@dataclass(frozen=True)
class QuoteSignals:
    """What was measured of one quote against the claim: everything `stance` decides from."""

    lexical: float  # CitationVerifier's support score: cosine and term coverage, 0..1
    grounded: bool  # every number and name of the claim is in the quote (or its article's title)
    conflict: Conflict | None  # a clash words can see, see `lexical_conflict`
    relation: Relation | None  # the judge's reading, None without a judge


_CLAUSE = re.compile(r"[,;:\u2013\u2014]\s+|\s+\b(?:but|although|though|while|whereas|yet)\b\s+", re.I)


def negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


def matching_clause(claim: str, quote: str) -> str:
    """The clause of the quote that shares most content words with the claim: "NATO agreed in 2008 that Ukraine
    would join one day, but did not set a date" agrees with "NATO agreed Ukraine would join"; its second
    clause's "not" is about something else."""
    terms = content_terms(claim)
    clauses = [c for c in _CLAUSE.split(quote) if c and c.strip()]
    return max(clauses, key=lambda c: len(terms & content_terms(c)), default=quote)


def _names_present(names: set[str], text: str) -> set[str]:
    """The names found in the text by exact word (no prefix: NATO-Russia is not NATO-Ukraine) or as an acronym."""
    vocab = word_vocabulary(text)
    return {n for n in names if n.lower() in vocab or acronym_present(n, text)}


def lexical_conflict(claim: str, quote: str) -> Conflict | None:
    """A clash between a claim and a quote about the same thing that words alone can see: one of the two is
    negated and the other not; the claim states a number the quote does not while the quote states others; or
    a name of the claim is absent while the quote names others. Only meaningful for a closely matching quote."""
    if negated(claim) != negated(matching_clause(claim, quote)):
        return "negation"
    claim_numbers, quote_numbers = numbers_in(claim), numbers_in(quote)
    if claim_numbers - quote_numbers and quote_numbers:
        return "number"
    claim_names = names_in(claim)
    if claim_names - _names_present(claim_names, quote) and names_in(quote) - claim_names:
        return "name"
    return None


def grounded(claim: str, text: str) -> bool:
    """Every number and every name of the claim appears in the text, names matched exactly."""
    names = names_in(claim)
    return numbers_in(claim) <= numbers_in(text) and _names_present(names, text) == names


def stance(signals: QuoteSignals, t: ClaimThresholds) -> Stance:
    """Whether this quote supports the claim, contradicts it, or says nothing about it."""
    if signals.lexical < t.related:
        return "neutral"  # about something else, whatever the judge reads into it
    clash = signals.conflict is not None and signals.lexical >= t.conflict
    r = signals.relation
    if r is None:
        if clash:
            return "contradicts"
        if signals.grounded and signals.conflict is None and signals.lexical >= t.lexical_support:
            return "supports"
        return "neutral"
    if (
        signals.grounded
        and signals.conflict is None
        and signals.lexical >= t.lexical_support
        and r.entail - r.contradict >= t.support
    ):
        return "supports"
    if clash or (r.contradict >= t.contradict and r.contradict > r.entail):
        return "contradicts"
    return "neutral"


def _strength(signals: QuoteSignals, kind: Stance) -> float:
    """How strongly a quote takes its stance: the judge's probability when there is one, then its closeness."""
    r = signals.relation
    p = 0.0 if r is None else (r.entail if kind == "supports" else r.contradict)
    return p + signals.lexical


def claim_verdict(signals: list[QuoteSignals], t: ClaimThresholds) -> tuple[Verdict, list[int]]:
    """The verdict and the indices of the quotes that decide it, strongest first. A quote that supports the
    claim outranks one that contradicts it: the candidates are the archive's nearest sentences, and one that
    states the claim beats a neighbour about something else that reads as clashing."""
    stances = [stance(s, t) for s in signals]
    for kind, verdict in (("supports", SUPPORTED), ("contradicts", CONTRADICTED)):
        chosen = [i for i, st in enumerate(stances) if st == kind]
        if chosen:
            chosen.sort(key=lambda i: -_strength(signals[i], kind))  # type: ignore[arg-type]
            return verdict, chosen[:MAX_CITED]  # type: ignore[return-value]
    return NOT_FOUND, []  # type: ignore[return-value]
