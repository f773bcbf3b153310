"""The judge's held-out figures: ROC AUC and accuracy of the answers head, 3-way accuracy and contradiction
recall / precision of the relation head, on pairs of the half it never trained on (bench/judge.py reports them
again, with the claim suite)."""

from __future__ import annotations

import numpy as np

from rag.evaluate.judge_data import ANSWERS, CONTRADICT, Pair
from rag.models.judge import ANSWERS_PREFIX, CLAIM_PREFIX, OnnxJudge


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney), ties averaged."""
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tie = scores == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def measure(judge: OnnxJudge, pairs: list[Pair]) -> dict:
    """Figures for one held-out set: AUC and accuracy at 0.5 (answers), 3-way accuracy and contradiction
    recall and precision (relation)."""
    logits = judge.logits([first_segment(p) for p in pairs], [p.text for p in pairs])
    labels = np.array([p.label for p in pairs])
    is_ans = np.array([p.task == ANSWERS for p in pairs])
    out: dict = {"pairs": len(pairs)}
    if is_ans.any():
        s = 1 / (1 + np.exp(-logits[is_ans, 0]))
        y = labels[is_ans]
        out |= {"answers_auc": round(auc(s, y), 4), "answers_acc": round(float(((s >= 0.5) == (y == 1)).mean()), 4)}
    if (~is_ans).any():
        pred = logits[~is_ans, 1:4].argmax(1)
        y = labels[~is_ans]
        contra = y == CONTRADICT
        said = pred == CONTRADICT
        out |= {
            "relation_acc": round(float((pred == y).mean()), 4),
            "contradict_recall": round(float(said[contra].mean()), 4) if contra.any() else None,
            "contradict_precision": round(float(contra[said].mean()), 4) if said.any() else None,
        }
    return out


def headline(figures: dict) -> float:
    """One accuracy per set, averaged: what the int8 graph must hold within a point."""
    accs = [v for f in figures.values() for k, v in f.items() if k in ("answers_acc", "relation_acc")]
    return float(np.mean(accs)) if accs else 0.0


def first_segment(pair: Pair) -> str:
    return (ANSWERS_PREFIX if pair.task == ANSWERS else CLAIM_PREFIX) + pair.first
