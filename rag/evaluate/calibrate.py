"""Fitting the answer decision to a corpus: `rag calibrate QUESTIONS...`.

Every question is taken through retrieval, evidence selection and the decision's features exactly as
`Pipeline.ask` takes it. Its label says whether answering would be right: an answerable question is a
positive when the sentences the extractive picker would quote hold every `must_include` group; asked
again with its gold articles left out (no reindex), the same question is a negative, and so is every
unanswerable one. A logistic model over the standardised features then gives a probability, and the
threshold is chosen on the curve (docs/calibration.md):

- `threshold`: the highest balanced accuracy among points that still answer `min_answered` of positives;
- `confident`: the lowest probability whose answers are right `confident_precision` of the time, used when
  the generator refuses but the evidence may overrule it.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.answer.decision import BASE_FEATURES, DecisionModel
from rag.answer.rewrite import rewrite_followup
from rag.evaluate.questions import EvalQuestion
from rag.evaluate.scoring import missing_groups
from rag.storage.manifest import Manifest
from rag.text.timeframe import parse_as_of

MIN_ANSWERED = 0.85
CONFIDENT_PRECISION = 0.9


@dataclass
class Row:
    id: str
    source: str  # which question set
    variant: str  # "gold" (as asked) or "leave_gold_out"
    label: int  # 1: answering is right (the quoted evidence holds the answer)
    features: dict[str, float] = field(default_factory=dict)
    probability: float | None = None


def collect(
    pipeline,
    questions: Sequence[EvalQuestion],
    *,
    source: str,
    leave_gold_out: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Feature rows for every question as asked, and again without its gold articles when it has any."""
    from rag.answer.quoting import extract_sentences

    rows: list[Row] = []
    for done, q in enumerate(questions, start=1):
        standalone = rewrite_followup(q.question, q.history)
        as_of, _ = parse_as_of(q.as_of)  # today when the question carries no date
        variants = [("gold", frozenset())]
        if leave_gold_out and q.gold_docs and not q.should_abstain:
            variants.append(("leave_gold_out", frozenset(q.gold_docs)))
        for variant, excluded in variants:
            found = pipeline.gather(
                standalone, mode="extractive", top_k=None, since=None, until=None, as_of=as_of, exclude_docs=excluded
            )
            label = 0
            if variant == "gold" and not q.should_abstain:
                quoted = " ".join(
                    s.text for s in extract_sentences(found.evidence, pipeline.settings.extractive_max_sentences)
                )
                label = int(bool(found.evidence.sentences) and not missing_groups(quoted, q.must_include))
            rows.append(Row(id=q.id, source=source, variant=variant, label=label, features=found.decision.features))
        if on_progress:
            on_progress(done, len(questions))
    return rows


def fit(
    rows: Sequence[Row],
    *,
    c: float = 0.1,
    min_answered: float = MIN_ANSWERED,
    confident_precision: float = CONFIDENT_PRECISION,
    trained_on: dict | None = None,
    features: Sequence[str] = BASE_FEATURES,
) -> DecisionModel:
    """A logistic model over standardised features; each source weighs the same, whatever its size.
    `features`: decision.FEATURES when the rows were gathered with a reader, else BASE_FEATURES."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len({r.label for r in rows}) < 2:
        raise ValueError("calibration needs both questions the evidence answers and questions it does not")
    x = np.array([[r.features[f] for f in features] for r in rows], dtype=np.float64)
    y = np.array([r.label for r in rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    per_source = {s: sum(1 for r in rows if r.source == s) for s in {r.source for r in rows}}
    weights = np.array([len(rows) / (len(per_source) * per_source[r.source]) for r in rows])
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weights)
    model = DecisionModel(
        weights=[float(w) for w in lr.coef_[0]],
        bias=float(lr.intercept_[0]),
        mean=mean.tolist(),
        scale=scale.tolist(),
        threshold=0.5,
        confident=0.9,
        features=tuple(features),
        trained_on=trained_on or {},
    )
    for r in rows:
        r.probability = model.probability(r.features)
    model.threshold = choose_threshold(rows, min_answered)
    model.confident = choose_confident(rows, confident_precision, floor=model.threshold)
    return model


def curve(rows: Sequence[Row], thresholds: Sequence[float]) -> list[dict]:
    """At each threshold: positives answered, negatives refused, and precision of what is answered/refused."""
    out = []
    pos = [r for r in rows if r.label]
    neg = [r for r in rows if not r.label]
    for t in thresholds:
        answered = [r for r in rows if (r.probability or 0.0) >= t]
        refused = [r for r in rows if (r.probability or 0.0) < t]
        tpr = sum(r.label for r in answered) / len(pos) if pos else None
        tnr = sum(1 - r.label for r in refused) / len(neg) if neg else None
        out.append(
            {
                "threshold": round(t, 3),
                "answered_of_answerable": tpr,
                "refused_of_unanswerable": tnr,
                "answer_precision": sum(r.label for r in answered) / len(answered) if answered else None,
                "abstain_precision": sum(1 - r.label for r in refused) / len(refused) if refused else None,
                "balanced_accuracy": (tpr + tnr) / 2 if tpr is not None and tnr is not None else None,
            }
        )
    return out


GRID = [round(0.05 + 0.025 * i, 3) for i in range(37)]


def choose_threshold(rows: Sequence[Row], min_answered: float) -> float:
    """Best balanced accuracy among thresholds that answer at least `min_answered` of positives; ties low."""
    points = [
        p
        for p in curve(rows, GRID)
        if p["answered_of_answerable"] is not None and p["answered_of_answerable"] >= min_answered
    ]
    if not points:
        return GRID[0]
    return max(points, key=lambda p: (p["balanced_accuracy"] or 0.0, -p["threshold"]))["threshold"]


def choose_confident(rows: Sequence[Row], precision: float, *, floor: float) -> float:
    for p in curve(rows, [t for t in GRID if t >= floor]):
        if p["answer_precision"] is not None and p["answer_precision"] >= precision:
            return p["threshold"]
    return 1.0


def split(ids: Sequence[str], *, seed: int = 7) -> tuple[set[str], set[str]]:
    """A fixed half/half split of question ids (fit on one half, report on the other)."""
    shuffled = sorted(set(ids))
    random.Random(seed).shuffle(shuffled)
    half = math.ceil(len(shuffled) / 2)
    return set(shuffled[:half]), set(shuffled[half:])


def rows_to_json(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


def rows_from_json(data: list[dict]) -> list[Row]:
    return [Row(**d) for d in data]


def corpus_version(manifest: Manifest) -> dict:
    """The index generation and a fingerprint of its documents (ids and content hashes) a decision was fitted on."""
    docs = sorted(f"{d.doc_id}:{d.content_hash}" for d in manifest.documents.values())
    digest = hashlib.sha256("\n".join(docs).encode()).hexdigest()[:16]
    return {"generation": manifest.generation, "documents": len(docs), "corpus": digest}


def write_model(model: DecisionModel, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(Path(path))
