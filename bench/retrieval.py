"""Dense vs BM25 vs hybrid retrieval on question sets: hit@1, hit@5, MRR of gold documents.

Usage:
    .venv/bin/python bench/retrieval.py --index build/eval-index --questions data/questions/nato_questions.jsonl
    .venv/bin/python bench/retrieval.py --index build/squad-index --questions build/squad/questions.jsonl
    .venv/bin/python bench/retrieval.py --index build/rtqa-index --questions
    ../shared/benchmarks/realtimeqa-2022-summer/questions.jsonl --as-of --split

`--as-of` asks each question as of its `question_date`/`as_of` (time words resolved, later articles left out);
`--split` also reports the two fixed halves (rag.evaluate.calibrate.split) so a change is kept only when both agree.
hit@k counts documents among the first k *passages*, as `rag eval` does with top_k = k.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.evaluate.calibrate import split  # noqa: E402
from rag.text.timeframe import parse_as_of, resolve  # noqa: E402

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


def evaluate(pipeline: Pipeline, questions: list[dict], method: str, depth: int, as_of: bool = False) -> dict:
    ranks, passage_ranks = [], []
    for q in questions:
        frame = None
        if as_of and (q.get("as_of") or q.get("question_date")):
            frame = resolve(q["question"], parse_as_of(q.get("as_of") or q.get("question_date"))[0])
        results = pipeline.retriever.search(q["question"], top_k=depth, method=method, frame=frame)
        # A folded copy of a gold article (rag/text/syndication.py) counts as the gold article: the reader is shown that
        # story.
        docs = [next((c.doc_id for c in r.also_in if c.doc_id in q["gold_docs"]), r.passage.doc_id) for r in results]
        ranks.append(first_gold_rank(docs, set(q["gold_docs"])))
        passage_ranks.append(next((i for i, d in enumerate(docs, start=1) if d in set(q["gold_docs"])), None))
    n = len(ranks) or 1
    return {
        "n": len(ranks),
        "hit_at_1": sum(1 for r in passage_ranks if r == 1) / n,
        "hit_at_5": sum(1 for r in passage_ranks if r is not None and r <= 5) / n,
        "mrr": sum(1 / r for r in passage_ranks if r is not None) / n,
        "doc_hit_at_5": sum(1 for r in ranks if r is not None and r <= 5) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path)
    ap.add_argument("--questions", type=Path)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--bm25-weights", type=str, default="", help="comma-separated BM25 weights to sweep for hybrid")
    ap.add_argument("--as-of", action="store_true", help="ask as of each question's question_date / as_of")
    ap.add_argument("--split", action="store_true", help="also report the two fixed halves")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="a setting to change, NAME=VALUE (repeatable), e.g. recency_weight=1.0",
    )
    ap.add_argument("--smoke", action="store_true", help="the bundled corpus and NATO questions, both halves")
    args = ap.parse_args()
    if args.smoke:
        import tempfile

        from common import smoke_index

        args.index = smoke_index(Path(tempfile.mkdtemp(prefix="bench-retrieval-smoke-")))
        args.questions, args.split, args.bm25_weights = ROOT / "data/questions/nato_questions.jsonl", True, "1,2"
    if args.index is None or args.questions is None:
        ap.error("--index and --questions are required (or --smoke)")
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    questions = [q for q in questions if q.get("gold_docs") and not q.get("history")]
    overrides = dict(kv.split("=", 1) for kv in args.set)
    pipeline = Pipeline.from_settings(Settings(_env_file=None, index_dir=args.index, **overrides), with_generator=False)
    halves = {"all": questions}
    if args.split:
        a, b = split([q["id"] for q in questions])
        halves |= {"half A": [q for q in questions if q["id"] in a], "half B": [q for q in questions if q["id"] in b]}
    print(
        f"{args.questions.name}: {len(questions)} answerable questions, {len(pipeline.index.passages)} passages; as-of "
        f"{'on' if args.as_of else 'off'}; {overrides or 'default settings'}"
    )
    print("| method | questions | hit@1 | hit@5 | MRR | doc hit@5 (depth) |\n|---|---|---|---|---|---|")
    rows = {}
    for m in METHODS:
        for name, qs in halves.items():
            r = rows[f"{m} {name}"] = evaluate(pipeline, qs, m, args.depth, args.as_of)
            print(
                f"| {m} | {name} | {r['hit_at_1']:.3f} | {r['hit_at_5']:.3f} | {r['mrr']:.3f} | "
                f"{r['doc_hit_at_5']:.3f} |"
            )
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
