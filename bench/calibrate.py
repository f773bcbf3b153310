"""Calibrate the two trust thresholds on data and print the trade-off curves.

1. Abstention (RAG_ABSTAIN_THRESHOLD): for each question, the evidence strength the pipeline computes
   (rag.answer.evidence.select_evidence) and whether a named number/name is missing. Questions whose reference is
   "unanswerable" should abstain. Prints precision/recall of abstaining and the share of answerable
   questions kept, per threshold, on SQuAD 2.0 dev (a calibration sample disjoint from the eval sample)
   and on the NATO question set.
2. Citation support (RAG_SUPPORT_THRESHOLD): claim/source pairs built from SQuAD answers. A positive pair
   is a claim made by putting the gold answer into its question, against the sentence holding the answer;
   negatives are the same claim with another answer from the same article (a wrong fact), and the true claim
   against another sentence of the same paragraph (the wrong source). The threshold is the lowest one whose
   precision on these pairs reaches the target.

Usage (after building the SQuAD index as in bench/squad.md):
    .venv/bin/python bench/calibrate.py --squad-index build/squad-index --nato-index build/eval-index
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.evidence import select_evidence  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.evaluate.squad import doc_id_for, load_squad, question_row, sample  # noqa: E402
from rag.text.sentences import split_sentences  # noqa: E402
from rag.verify.citations import CitationVerifier, facts_grounded  # noqa: E402

MIN_KEPT = 0.8
WH = re.compile(
    r"^(what|which|who|whom|whose|when|where|how many|how much|how|why)\b"
    r"(\s+(is|was|are|were|did|does|do|has|had))?\s*",
    re.I,
)


def strengths(pipeline: Pipeline, questions: list[dict]) -> list[tuple[bool, float, bool]]:
    """(should abstain, strength, names/numbers missing) per question."""
    out = []
    for q in questions:
        scored = pipeline.retriever.search(q["question"])
        ev = select_evidence(
            q["question"], scored, pipeline.embedder, pipeline.settings, idf=pipeline.index.lexical.idf
        )
        out.append((not q["must_include"], ev.strength, bool(ev.missing_terms)))
    return out


def abstain_curve(rows: list[tuple[bool, float, bool]], thresholds: list[float]) -> list[dict]:
    curve = []
    for t in thresholds:
        tp = fp = fn = tn = 0
        for should, strength, missing in rows:
            abstain = missing or strength < t
            tp += abstain and should
            fp += abstain and not should
            fn += (not abstain) and should
            tn += (not abstain) and not should
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        kept = tn / (tn + fp) if tn + fp else None
        curve.append(
            {
                "threshold": t,
                "abstain_precision": precision,
                "abstain_recall": recall,
                "answerable_kept": kept,
                "balanced_accuracy": ((recall or 0) + (kept or 0)) / 2,
            }
        )
    return curve


def claim_from(question: str, answer: str) -> str:
    """'Who led the Normans?' + 'Rollo' -> 'Rollo led the Normans.' A rough statement, as a small model writes."""
    body = WH.sub("", question.strip().rstrip("?")).strip()
    return f"{answer} {body}." if body else f"{answer}."


def support_pairs(squad: list[dict], limit: int, seed: int) -> list[tuple[str, str, bool]]:
    rng = random.Random(seed)
    pairs: list[tuple[str, str, bool]] = []
    for article in squad:
        answers = [a["text"] for p in article["paragraphs"] for qa in p["qas"] for a in qa.get("answers", [])[:1]]
        for para in article["paragraphs"]:
            spans = split_sentences(para["context"])
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                ans = qa["answers"][0]
                start = ans["answer_start"]
                holding = [s for s in spans if s[0] <= start < s[1]]
                others = [s for s in spans if s[0] > start or s[1] <= start]
                if not holding:
                    continue
                source = para["context"][holding[0][0] : holding[0][1]]
                claim = claim_from(qa["question"], ans["text"])
                pairs.append((claim, source, True))
                wrong = [a for a in answers if a.lower() != ans["text"].lower()]
                if wrong:
                    pairs.append((claim_from(qa["question"], rng.choice(wrong)), source, False))
                if others:
                    o = rng.choice(others)
                    pairs.append((claim, para["context"][o[0] : o[1]], False))
    rng.shuffle(pairs)
    return pairs[:limit]


def support_curve(
    verifier: CitationVerifier, pairs: list[tuple[str, str, bool]], thresholds: list[float]
) -> list[dict]:
    from rag.core.types import EvidenceSentence

    scored = []
    for claim, source, label in pairs:
        ranked = verifier.best_support(
            [claim], [EvidenceSentence(text=source, doc_id="", passage_id="", start=0, end=0)]
        )[0]
        scored.append((ranked[0][1], facts_grounded(claim, source), label))
    curve = []
    for t in thresholds:
        tp = sum(1 for s, g, y in scored if s >= t and g and y)
        fp = sum(1 for s, g, y in scored if s >= t and g and not y)
        pos = sum(1 for _, _, y in scored if y)
        curve.append(
            {"threshold": t, "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / pos if pos else None}
        )
    return curve


def fmt(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/benchmarks/squad-v2/dev-v2.0.json")
    ap.add_argument("--squad-index", type=Path)
    ap.add_argument("--nato-index", type=Path)
    ap.add_argument("--nato-questions", type=Path, default=ROOT / "data/questions/nato_questions.jsonl")
    ap.add_argument(
        "--exclude", type=Path, default=ROOT / "build/squad/questions.jsonl", help="eval sample kept out of calibration"
    )
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--support-precision", type=float, default=0.9)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/calibration.json")
    ap.add_argument("--smoke", action="store_true", help="the bundled corpus as both indexes, 20 questions, 40 pairs")
    args = ap.parse_args()
    if args.smoke:
        import tempfile

        from common import smoke_index

        work = Path(tempfile.mkdtemp(prefix="bench-calibrate-smoke-"))
        args.squad_index = args.nato_index = smoke_index(work)
        args.limit, args.pairs, args.out = 20, 40, work / "calibration.json"
    if args.squad_index is None or args.nato_index is None:
        ap.error("--squad-index and --nato-index are required (or --smoke)")

    squad = load_squad(args.squad)
    excluded = (
        {json.loads(line)["id"] for line in args.exclude.read_text().splitlines() if line.strip()}
        if args.exclude.is_file()
        else set()
    )
    rows = [
        r
        for a in squad
        for i, p in enumerate(a["paragraphs"])
        for qa in p["qas"]
        if (r := question_row(qa, doc_id_for(a["title"], i), a["title"])) and r["id"] not in excluded
    ]
    calib = sample(rows, limit=args.limit, seed=args.seed, unanswerable_share=0.5)
    nato = [json.loads(line) for line in args.nato_questions.read_text().splitlines() if line.strip()]
    nato = [q for q in nato if not q.get("history")]  # follow-ups are judged after rewriting, not here

    thresholds = [round(0.25 + 0.025 * i, 3) for i in range(17)]
    base = Settings(_env_file=None)
    results: dict = {}
    for name, index_dir, questions in (("squad", args.squad_index, calib), ("nato", args.nato_index, nato)):
        pipeline = Pipeline.from_settings(base.model_copy(update={"index_dir": index_dir}), with_generator=False)
        results[name] = abstain_curve(strengths(pipeline, questions), thresholds)
        print(
            f"\nAbstention on {name} ({len(questions)} questions, {sum(1 for q in questions if not q['must_include'])} "
            "unanswerable)"
        )
        print("threshold  abstain_P  abstain_R  answerable_kept  balanced_acc")
        for row in results[name]:
            print(
                f"  {row['threshold']:.3f}    {fmt(row['abstain_precision'])}      {fmt(row['abstain_recall'])}      "
                f"{fmt(row['answerable_kept'])}          {fmt(row['balanced_accuracy'])}"
            )

    # Operating point: best mean balanced accuracy over both sets (so neither the news domain nor the larger
    # external set alone decides), among thresholds that keep at least MIN_KEPT of the answerable questions
    # on each set: a tool that refuses more than one answerable question in five is not usable, and the
    # curve is flat enough past that point to buy little. Ties go to the lower threshold (refuse less).
    combined = [
        (t, (a["balanced_accuracy"] + b["balanced_accuracy"]) / 2)
        for t, a, b in zip(thresholds, results["squad"], results["nato"])
        if min(a["answerable_kept"] or 0, b["answerable_kept"] or 0) >= MIN_KEPT
    ]
    if not combined:  # no threshold keeps enough on both sets (a small or off-topic sample): the best overall
        print(f"\nno threshold keeps >= {MIN_KEPT} of the answerable questions on both sets")
        combined = [
            (t, ((a["balanced_accuracy"] or 0) + (b["balanced_accuracy"] or 0)) / 2)
            for t, a, b in zip(thresholds, results["squad"], results["nato"])
        ]
    best_t = max(combined, key=lambda tb: (round(tb[1], 3), -tb[0]))[0]
    print(
        f"\nchosen abstain_threshold = {best_t} (best mean balanced accuracy over SQuAD and NATO keeping >= {MIN_KEPT} "
        "of answerable)"
    )

    verifier = CitationVerifier(pipeline.embedder, base)
    pairs = support_pairs(squad, args.pairs, args.seed)
    s_thresholds = [round(0.4 + 0.025 * i, 3) for i in range(17)]
    results["support"] = support_curve(verifier, pairs, s_thresholds)
    print(f"\nCitation support on {len(pairs)} SQuAD claim/source pairs ({sum(1 for p in pairs if p[2])} positive)")
    print("threshold  precision  recall")
    for row in results["support"]:
        print(f"  {row['threshold']:.3f}    {fmt(row['precision'])}     {fmt(row['recall'])}")
    ok = [
        r["threshold"]
        for r in results["support"]
        if r["precision"] is not None and r["precision"] >= args.support_precision
    ]
    support_t = min(ok) if ok else None
    print(f"\nchosen support_threshold = {support_t} (lowest with precision >= {args.support_precision})")
    results["chosen"] = {"abstain_threshold": best_t, "support_threshold": support_t}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
