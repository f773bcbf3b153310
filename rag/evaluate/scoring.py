"""How one eval question is judged and how judged questions add up to the report's figures.

Kept free of models and I/O so every rule here is tested in milliseconds with hand-made records.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from rag.core.types import ChatTurn, Timings
from rag.text.tokens import STOPWORDS

# The figures every report carries at the top of `summary`, in this order; nothing else goes there.
SUMMARY_KEYS = (
    "n",
    "answer_accuracy",
    "abstain_precision",
    "abstain_recall",
    "citation_validity",
    "gold_doc_cited",
    "hit_at_1",
    "hit_at_5",
    "mrr",
    "latency_p50_s",
    "latency_p95_s",
    "ttft_p50_s",
    "prompt_tokens_mean",
)
# Figures the baseline gate holds; latency is reported but machines are too noisy to gate on it.
QUALITY_KEYS = tuple(k for k in SUMMARY_KEYS if k != "n" and not k.endswith(("_s", "_mean")))
# The independent citation check: share of the sentence's content words found in the quote.
LEXICAL_OVERLAP_MIN = 0.5
# Words are compared on their first letters so "upgraded"/"upgrading" and "member"/"membership" meet
# without borrowing the verifier's tokenizer (the point of this check is not to share its blind spots).
STEM_CHARS = 6

_MARKERS = re.compile(r"\[(?:\d{1,3}(?:\s*,\s*\d{1,3})*|unsupported)\]", re.I)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NON_WORD = re.compile(r"[\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# --------------------------------------------------------------------------------------------- records
class Retrieved(BaseModel):
    passage_id: str
    doc_id: str
    rank: int
    score: float


class CitationCheck(BaseModel):
    """One shown citation replayed against the sentence it backs."""

    number: int
    doc_id: str
    passage_id: str
    sentence: str
    quote: str
    verifier_ok: bool
    verifier_score: float
    lexical_ok: bool
    lexical_score: float


class Verdict(BaseModel):
    should_abstain: bool
    passed: bool  # the right behaviour: a correct answer, or an abstention where the articles are silent
    correct: bool | None = None  # answerable questions only: answered and every must_include group found
    abstain: str = "right"  # "right" or "wrong": abstained exactly when it should have
    missing: list[list[str]] = Field(default_factory=list)  # must_include groups the answer lacks
    gold_cited: bool | None = None  # answered answerable questions with gold docs only
    citations_valid: int = 0
    citations_valid_lexical: int = 0


class QuestionRecord(BaseModel):
    id: str
    type: str
    question: str
    history: list[ChatTurn] = Field(default_factory=list)
    standalone_question: str | None = None
    reference: str | None = None
    must_include: list[list[str]] = Field(default_factory=list)
    gold_docs: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)  # unknown question fields, carried through untouched
    retrieved: list[Retrieved] = Field(default_factory=list)
    gold_rank: int | None = None
    answer: str = ""
    abstained: bool = False
    abstain_reason: str | None = None
    confidence: float | None = None  # the answer decision's probability that the evidence answers it
    written_by: str | None = None
    quoted_because: str | None = None
    error: str | None = None  # a RagError raised for this question alone
    citations: list[CitationCheck] = Field(default_factory=list)
    verdict: Verdict
    timings: Timings = Field(default_factory=Timings)


# --------------------------------------------------------------------------------------------- answer text
def normalise(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, one space between words; "180,000" -> "180000"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = _THOUSANDS.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def contains(text: str, alternative: str) -> bool:
    """`alternative` occurs in `text` starting at a word start, both normalised.

    Starting at a word lets "guarantee" match "guarantees" while "nato" does not match "senator"; a
    number must also end where a number ends, so "31" matches neither "131" nor "310".
    """
    alt = normalise(alternative)
    if not alt:
        return False
    tail = r"(?!\d)" if alt[-1].isdigit() else ""
    return re.search(r"(?<!\w)" + re.escape(alt) + tail, normalise(text)) is not None


def strip_markers(text: str) -> str:
    """The answer as read, without [n] and [unsupported] markers, whose digits would match numbers."""
    return _MARKERS.sub(" ", text)


def missing_groups(answer: str, must_include: list[list[str]]) -> list[list[str]]:
    text = strip_markers(answer)
    return [group for group in must_include if not any(contains(text, alt) for alt in group)]


# --------------------------------------------------------------------------------------------- citations
# The eval measures the verifier, so it reads words and numbers its own way (not rag.text.tokens or
# rag.text.patterns): a tokenizer shared with rag.verify would make the same mistake on both sides and hide it.
def _stems(text: str) -> set[str]:
    return {w[:STEM_CHARS] for w in normalise(text).split() if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def _numbers(text: str) -> set[str]:
    return {_THOUSANDS.sub("", n).rstrip(".,") for n in _NUMBER.findall(text)}


def lexical_support(sentence: str, quote: str) -> tuple[bool, float]:
    """Independent of the verifier: enough of the sentence's words are in the quote, and all its numbers."""
    words = _stems(strip_markers(sentence))
    if not words:
        return False, 0.0
    overlap = len(words & _stems(quote)) / len(words)
    numbers_ok = _numbers(strip_markers(sentence)) <= _numbers(quote)
    return overlap >= LEXICAL_OVERLAP_MIN and numbers_ok, round(overlap, 4)


# --------------------------------------------------------------------------------------------- figures
def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def drafted(records: Sequence[QuestionRecord]) -> list[QuestionRecord]:
    """The answers the model drafted (it was prompted and did not refuse); written_by "model": the draft survived."""
    return [r for r in records if r.error is None and r.timings.prompt_tokens > 0 and not r.abstained]


def figures(records: Sequence[QuestionRecord], k: int) -> dict[str, Any]:
    """Every figure of a set of judged questions; SUMMARY_KEYS among them, the rest for `details`."""
    answerable = [r for r in records if not r.verdict.should_abstain]
    unanswerable = [r for r in records if r.verdict.should_abstain]
    abstained = [r for r in records if r.abstained]
    with_gold = [r for r in answerable if r.gold_docs]
    answered_gold = [r for r in with_gold if not r.abstained and r.error is None]
    checks = [c for r in records for c in r.citations]
    timed = [r for r in records if r.error is None]
    generated = [r for r in timed if r.timings.prompt_tokens > 0]
    ranks = [r.gold_rank for r in with_gold]

    def hit(limit: int) -> float | None:
        return _share(rank is not None and rank <= limit for rank in ranks)

    totals = [r.timings.total_s for r in timed]
    retrieval = [r.timings.retrieval_s for r in timed]
    ttfts = [r.timings.ttft_s for r in timed if r.timings.ttft_s is not None]
    out: dict[str, Any] = {
        "n": len(records),
        "answer_accuracy": _share(bool(r.verdict.correct) for r in answerable),
        "abstain_precision": _share(r.verdict.should_abstain for r in abstained),
        "abstain_recall": _share(r.abstained for r in unanswerable),
        "citation_validity": _share(c.verifier_ok for c in checks),
        "gold_doc_cited": _share(bool(r.verdict.gold_cited) for r in answered_gold),
        "hit_at_1": hit(1),
        "hit_at_5": hit(5),
        "mrr": _mean(1 / rank if rank else 0.0 for rank in ranks),
        "latency_p50_s": percentile(totals, 50),
        "latency_p95_s": percentile(totals, 95),
        "ttft_p50_s": percentile(ttfts, 50),
        "prompt_tokens_mean": _mean(r.timings.prompt_tokens for r in generated),
        # details
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_abstained": len(abstained),
        "n_errors": sum(1 for r in records if r.error),
        "n_citations": len(checks),
        "passed": _share(r.verdict.passed for r in records),
        "citation_validity_lexical": _share(c.lexical_ok for c in checks),
        "k": k,
        f"hit_at_{k}": hit(k),
        "retrieval_p50_s": percentile(retrieval, 50),
        "retrieval_p95_s": percentile(retrieval, 95),
        "ttft_p95_s": percentile(ttfts, 95),
        "tokens_per_s_mean": _mean(r.timings.tokens_per_s for r in generated if r.timings.tokens_per_s),
        "completion_tokens_mean": _mean(r.timings.completion_tokens for r in generated),
        "extractive_fallbacks": sum(1 for r in records if r.quoted_because == "draft_unsupported"),
        "answerable_refused": sum(1 for r in answerable if r.abstained),
        # Leave-the-gold-out runs: of the answers given without the gold articles, those that still hold the
        # reference answer (another article carried it), so not every one of them is a wrong answer.
        "left_out_answered_with_reference": sum(
            1
            for r in unanswerable
            if not r.abstained
            and r.error is None
            and r.extra.get("reference_groups")
            and not missing_groups(r.answer, r.extra["reference_groups"])
        ),
        # Of the answers the model drafted, the share whose own sentences survived verification (the rest were
        # replaced by quotes): what generation time bought.
        "generation_survival": _share(r.written_by == "model" for r in drafted(records)),
    }
    return {key: _round(v) if isinstance(v, float) else v for key, v in out.items()}


def split_figures(all_figures: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary with exactly SUMMARY_KEYS, everything else)."""
    summary = {key: all_figures.get(key) for key in SUMMARY_KEYS}
    details = {key: v for key, v in all_figures.items() if key not in SUMMARY_KEYS}
    return summary, details


def figures_by_type(records: Sequence[QuestionRecord], k: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[QuestionRecord]] = {}
    for r in records:
        groups.setdefault(r.type, []).append(r)
    return {t: figures(rs, k) for t, rs in sorted(groups.items())}


# --------------------------------------------------------------------------------------------- baseline
class Comparison(BaseModel):
    figure: str
    baseline: float | None
    current: float | None
    delta: float | None
    gated: bool
    regressed: bool


def compare(current: dict[str, Any], baseline: dict[str, Any], tolerance: float) -> list[Comparison]:
    """Each summary figure against the baseline; a gated figure regresses when it drops by more than `tolerance`.

    A figure that became undefined (e.g. precision when nothing abstained) is shown but not gated: the
    figure that caused it (recall, here) carries the drop.
    """
    rows = []
    for key in SUMMARY_KEYS[1:]:
        base, now = baseline.get(key), current.get(key)
        delta = None if base is None or now is None else round(float(now) - float(base), 4)
        gated = key in QUALITY_KEYS
        # The epsilon keeps a drop of exactly the tolerance (0.80 -> 0.75) from failing on float error.
        regressed = gated and delta is not None and -delta > tolerance + 1e-9
        rows.append(Comparison(figure=key, baseline=base, current=now, delta=delta, gated=gated, regressed=regressed))
    return rows


def describe_regressions(rows: Sequence[Comparison], tolerance: float) -> str:
    dropped = [f"{r.figure} {r.baseline:.3f} -> {r.current:.3f}" for r in rows if r.regressed]
    return f"quality dropped below the baseline by more than {tolerance:g}: " + ", ".join(dropped)
