"""Dense vs BM25 vs hybrid retrieval on question sets: hit@1, hit@5, MRR of gold documents.

Usage:
    .venv/bin/python bench/retrieval.py --index build/eval-index --questions data/questions/nato_questions.jsonl
    .venv/bin/python bench/retrieval.py --index build/squad-index --questions build/squad/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.pipeline import Pipeline  # noqa: E402
from rag.settings import Settings  # noqa: E402

METHODS = ("dense", "bm25", "hybrid")


def first_gold_rank(doc_ids: list[str], gold: set[str]) -> int | None:
    """Rank of the first retrieved passage from a gold document (passages of one doc count once)."""
    seen: list[str] = []
    for doc in doc_ids:
        if doc not in seen:
            seen.append(doc)
        if doc in gold:
            return len(seen)
    return None


def evaluate(pipeline: Pipeline, questions: list[dict], method: str, depth: int) -> dict:
    ranks = []
    for q in questions:
        results = pipeline.retriever.search(q["question"], top_k=depth, method=method)
        ranks.append(first_gold_rank([r.passage.doc_id for r in results], set(q["gold_docs"])))
    n = len(ranks)
    return {
        "n": n,
        "hit_at_1": sum(1 for r in ranks if r == 1) / n,
        "hit_at_5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--bm25-weights", type=str, default="", help="comma-separated BM25 weights to sweep for hybrid")
    args = ap.parse_args()
    questions = [json.loads(l) for l in args.questions.read_text().splitlines() if l.strip()]
    questions = [q for q in questions if q.get("gold_docs") and not q.get("history")]
    pipeline = Pipeline.from_settings(Settings(_env_file=None, index_dir=args.index), with_generator=False)
    rows = {m: evaluate(pipeline, questions, m, args.depth) for m in METHODS}
    print(f"{args.questions.name}: {len(questions)} answerable questions, {len(pipeline.index.passages)} passages")
    print("| method | hit@1 | hit@5 | MRR |\n|---|---|---|---|")
    for m, r in rows.items():
        print(f"| {m} | {r['hit_at_1']:.3f} | {r['hit_at_5']:.3f} | {r['mrr']:.3f} |")
    for w in [float(x) for x in args.bm25_weights.split(",") if x]:
        pipeline.settings = pipeline.settings.model_copy(update={"bm25_weight": w})
        pipeline.use_index(pipeline.index)
        r = evaluate(pipeline, questions, "hybrid", args.depth)
        rows[f"hybrid_bm25x{w}"] = r
        print(f"| hybrid, BM25 weight {w} | {r['hit_at_1']:.3f} | {r['hit_at_5']:.3f} | {r['mrr']:.3f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
