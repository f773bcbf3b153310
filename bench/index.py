"""Indexing throughput: `rag index` on SQuAD 2.0 paragraphs against raw SentenceTransformer.encode, same run.

Every SQuAD 2.0 dev paragraph becomes a .txt file (read from ../shared at run time). At the default chunk size
they give 1,984 passages, so the benchmark chunks at 100 words (2,200 passages) to clear 2,000. Three things
are timed on the same passages:

    raw     SentenceTransformer.encode(texts, batch_size, normalize_embeddings=True) on the passage texts
    embed   rag.ingest.batches.embed_passages: what our indexing runs for the vectors
    index   rag.ingest.indexing.index_paths on the files: read, clean, chunk, embed, FAISS + BM25, commit a segment

The files are split into slices (4 by default) that `rag index` adds one after another to one index, as a
growing archive is indexed; each slice is timed on all three sides back to back, in rotating order. On these
shared machines a minute-long run drifts by 10% or more between two back-to-back runs of the same code, so
whole-corpus runs minutes apart compared noise; slices keep each comparison within seconds. The ratio is
total passages over total time, summed over slices and rounds; a later slice also pays for loading the index
it joins, which a one-shot run would not, so the figure is conservative.

With `--backend onnx` (issue #15) the embed and index sides run the ONNX Runtime embedder while raw stays
PyTorch's encode, so index/raw is the ONNX speed-up over PyTorch; `--query-rounds N` times N single-question
embeddings on each backend, interleaved; `--squad-questions N` builds a torch index and an index of the chosen
backend over the SQuAD 2.0 dev paragraphs (`rag squad`'s export, default chunking) and compares retrieval
hit@5 on an N-question sample, dense and hybrid (bench/retrieval.py's scoring).

    python bench/index.py [--rounds 2] [--slices 4] [--limit 600] [--chunk-size 100]
    python bench/index.py --backend onnx [--quantization int8] --limit 300 --rounds 1 --query-rounds 200
    --squad-questions 500

`--commit-one N` (issue #15) times instead committing one article into a synthetic index of N passages, the
whole-generation write before segments against the segment commit (bench/commit_one.py says how):

    python bench/index.py --commit-one 100000 [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    SQUAD_DEV,
    load_average,
    peak_rss_mb,
    print_header,
    reset_peak_rss,
    rss_mb,
    squad_paragraphs,
    summary_ms,
    write_json,
)


def write_corpus(folder: Path, paragraphs: list[tuple[str, str]], offset: int = 0) -> None:
    # A title line of its own, like a news headline; the paragraph number keeps one-word titles a headline.
    for i, (title, context) in enumerate(paragraphs, start=offset):
        (folder / f"squad_{i:04d}.txt").write_text(
            f"{title}, paragraph {i}\n\n{' '.join(context.split())}\n", encoding="utf-8"
        )


def passages_of(folder: Path, chunk_size: int, chunk_overlap: int) -> list:
    from rag.ingest.corpus import iter_article_paths, load_article
    from rag.text.chunking import chunk_article

    out = []
    for path in iter_article_paths([folder]):
        out.extend(chunk_article(load_article(path), chunk_size=chunk_size, chunk_overlap=chunk_overlap))
    return out


class StageTimer:
    """Wraps the functions index_paths calls by module-global name, to see where its time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        self._saved.append((module, name, original))
        setattr(module, name, timed_call)

    def restore(self) -> None:
        for module, name, original in reversed(self._saved):
            setattr(module, name, original)
        self._saved.clear()


def query_latency(sides: dict[str, Any], questions: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """p50 of embedding one question, each backend in turn on the same question, so both meet the same load."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for emb in sides.values():
        emb.embed(questions[:2])  # warm-up: first-call allocations and, for ONNX, the query session
    for i in range(rounds):
        for name, emb in sides.items():
            start = time.perf_counter()
            emb.embed([questions[i % len(questions)]])
            seconds[name].append(time.perf_counter() - start)
    return {name: summary_ms(values) for name, values in seconds.items()}


def squad_retrieval(
    squad: Path, work: Path, base: Any, sides: dict[str, Any], questions: int, seed: int
) -> dict[str, dict[str, float]]:
    """hit@5 on SQuAD 2.0 of an index built by each backend, each searched with its own embedder."""
    import json

    from retrieval import evaluate

    from rag.answer.pipeline import Pipeline
    from rag.evaluate.squad import export_squad
    from rag.ingest.indexing import index_paths
    from rag.models.prompts import PromptSet

    # Answerable questions only: an unanswerable one has no gold passage, so it says nothing about hit@5.
    exported = export_squad(squad, work / "squad", limit=questions, seed=seed, unanswerable_share=0.0)
    sample = [json.loads(line) for line in exported.questions_path.read_text().splitlines() if line.strip()]
    sample = [q for q in sample if q.get("gold_docs")]
    out: dict[str, dict[str, float]] = {}
    for name, emb in sides.items():
        # The default chunking, as `rag index` would build this corpus (the throughput part uses --chunk-size).
        settings = base.model_copy(
            update={
                "index_dir": work / f"squad-index-{name}",
                "chunk_size": type(base).model_fields["chunk_size"].default,
            }
        )
        start = time.perf_counter()
        index, _ = index_paths(settings, emb, [exported.corpus_dir])
        built = time.perf_counter() - start
        pipeline = Pipeline(settings, index, emb, None, PromptSet.load())
        for method in ("dense", "hybrid"):
            r = evaluate(pipeline, sample, method, 20)
            out[f"{name} {method}"] = {
                "questions": r["n"],
                "hit_at_5": round(r["hit_at_5"], 4),
                "hit_at_1": round(r["hit_at_1"], 4),
                "mrr": round(r["mrr"], 4),
            }
        out[f"{name} build"] = {
            "passages": len(index.passages),
            "seconds": round(built, 1),
            "passages_per_s": round(len(index.passages) / built, 2),
        }
        print(
            f"  {name}: {len(index.passages)} passages indexed in {built:.0f}s; "
            + "; ".join(f"{m} hit@5 {out[f'{name} {m}']['hit_at_5']:.3f}" for m in ("dense", "hybrid")),
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--squad", type=Path, default=SQUAD_DEV)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N paragraphs (quick runs)")
    parser.add_argument("--chunk-size", type=int, default=100, help="words per passage (default 100 -> 2,200 passages)")
    parser.add_argument("--rounds", type=int, default=2, help="full passes over the slices, each into a fresh index")
    parser.add_argument(
        "--slices", type=int, default=4, help="files indexed as this many successive `rag index` batches"
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default=None,
        help="embedder of the embed and index sides (default: RAG_EMBEDDING_BACKEND's default, onnx; raw is always "
        "PyTorch)",
    )
    parser.add_argument("--quantization", choices=["none", "int8"], default="none", help="with --backend onnx")
    parser.add_argument(
        "--query-rounds", type=int, default=0, help="single-question embeddings timed per backend (0: skip)"
    )
    parser.add_argument(
        "--squad-questions", type=int, default=0, help="SQuAD questions for the hit@5 comparison (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of the SQuAD question sample")
    parser.add_argument(
        "--query-threads",
        type=int,
        default=None,
        help="RAG_QUERY_THREADS for the query timing (default: all; `rag serve` uses 1)",
    )
    parser.add_argument(
        "--commit-one",
        type=int,
        default=0,
        metavar="N",
        help="time committing one article into N synthetic passages, then exit",
    )
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument(
        "--smoke", action="store_true", help="24 paragraphs, 2 slices, 1 round, 5 query rounds, 1,000-passage commit"
    )
    args = parser.parse_args()
    if args.backend is None:
        from rag.core.settings import Settings

        args.backend = Settings.model_fields["embedding_backend"].default
    if args.smoke:
        args.limit, args.slices, args.rounds, args.query_rounds = 24, 2, 1, 5

    print_header("index")
    if args.commit_one:
        from commit_one import commit_one

        work = Path(tempfile.mkdtemp(prefix="newsrag-bench-commit-"))
        try:
            result = commit_one(work, args.commit_one, args.rounds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print("median: " + ", ".join(f"{k} {v:.3f}s" for k, v in result["median_s"].items()))
        print(
            f"one-article commit under 1 s: {'met' if result['target_met'] else 'NOT met'}; load_average "
            f"{load_average()}"
        )
        if not args.no_json:
            print("wrote", write_json("index_commit", result | {"load_average_end": load_average()}))
        return
    import torch

    from rag.core.settings import Settings
    from rag.ingest import batches, indexing
    from rag.models.embedding import build_embedder
    from rag.storage import segments

    work = Path(tempfile.mkdtemp(prefix="newsrag-bench-index-"))
    try:
        paragraphs = squad_paragraphs(args.squad)[: args.limit]
        size = -(-len(paragraphs) // args.slices)
        folders = []
        for k in range(0, len(paragraphs), size):
            folder = work / f"corpus-{len(folders)}"
            folder.mkdir()
            write_corpus(folder, paragraphs[k : k + size], offset=k)
            folders.append(folder)
        base = Settings(
            chunk_size=args.chunk_size,
            index_dir=work / "index-0",
            embedding_backend=args.backend,
            embedding_quantization=args.quantization,
            query_threads=args.query_threads,
        )
        embedder = build_embedder(base)
        reference = (
            embedder
            if args.backend == "torch"
            else build_embedder(
                base.model_copy(update={"embedding_backend": "torch", "embedding_quantization": "none"})
            )
        )
        model = reference._model  # the raw side runs on the same weights and thread settings
        slices = [passages_of(folder, base.chunk_size, base.chunk_overlap) for folder in folders]
        texts = [[batches.passage_text_for_embedding(p) for p in ps] for ps in slices]
        n = sum(len(ps) for ps in slices)
        flat = [t for ts in texts for t in ts]
        tokens = [
            len(ids) for ids in model.tokenizer(flat, truncation=True, max_length=model.max_seq_length)["input_ids"]
        ]
        print(
            f"{len(paragraphs)} paragraphs -> {n} passages at chunk size {base.chunk_size} in {len(slices)} slices; "
            f"mean {sum(tokens) / n:.0f} tokens (max {max(tokens)}), batch size {embedder.batch_size}; backend "
            f"{args.backend} {args.quantization}",
            flush=True,
        )
        embedder.embed(flat[:32])  # warm-up, outside every timing
        reference.embed(flat[:32])
        # index_paths' own first-call costs, as the raw side's (importing torch, loading the model) are outside
        # too: the near-duplicate check imports datasketch and with it scipy (~0.5 s idle, 0.8 s under load).
        warm = work / "warm-up"
        warm.mkdir()
        write_corpus(warm, paragraphs[:2], offset=len(paragraphs))
        indexing.index_paths(base.model_copy(update={"index_dir": work / "index-warm-up"}), embedder, [warm])

        total = {"raw": 0.0, "embed": 0.0, "index": 0.0}
        pair_ratios: list[float] = []
        peaks: dict[str, float] = {}
        timer = StageTimer()
        sides = ["raw", "embed", "index"]
        for round_no in range(args.rounds):
            settings = base.model_copy(update={"index_dir": work / f"index-{round_no}"})
            for k, (folder, ps, ts) in enumerate(zip(folders, slices, texts)):
                elapsed: dict[str, float] = {}
                # Rotated each slice: whichever side runs first would otherwise meet the same drift every time.
                turn = (round_no * len(folders) + k) % len(sides)
                for name in sides[turn:] + sides[:turn]:
                    baseline = rss_mb()
                    reset_peak_rss()
                    start = time.perf_counter()
                    if name == "raw":
                        torch.set_num_threads(reference.threads)  # the library as configured, whatever ours last set
                        model.encode(
                            ts,
                            batch_size=embedder.batch_size,
                            normalize_embeddings=True,
                            convert_to_numpy=True,
                            show_progress_bar=False,
                        )
                    elif name == "embed":
                        batches.embed_passages(embedder, ps)
                    else:
                        timer.wrap(batches, "article_from_bytes", "read+clean")
                        timer.wrap(batches, "chunk_article", "chunk")
                        timer.wrap(batches, "embed_passages", "embed")
                        timer.wrap(indexing, "_store_raw", "keep raw copies")
                        timer.wrap(segments, "commit", "commit (segment write, fsync)")
                        try:
                            _, report = indexing.index_paths(settings, embedder, [folder])
                        finally:
                            timer.restore()
                        if report.passages_embedded != len(ps):
                            raise SystemExit(
                                f"index_paths embedded {report.passages_embedded} passages of slice {k}, expected "
                                f"{len(ps)}"
                            )
                    elapsed[name] = time.perf_counter() - start
                    total[name] += elapsed[name]
                    peaks[name] = max(peaks.get(name, 0.0), peak_rss_mb() - baseline)
                pair_ratios.append(elapsed["raw"] / elapsed["index"])
                print(
                    f"  round {round_no + 1} slice {k + 1}: {len(ps)} passages  "
                    + "  ".join(f"{name} {elapsed[name]:6.2f}s" for name in sides)
                    + f"  index/raw {pair_ratios[-1]:.3f}",
                    flush=True,
                )

        done = n * args.rounds
        target = 0.9 if args.backend == "torch" else 1.5  # issue #8 for torch; issue #15: ONNX at least 1.5x
        rate = {k: done / v for k, v in total.items()}
        stages = {k: v / args.rounds for k, v in timer.seconds.items()}
        stages["other (store/BM25 apply, manifest)"] = total["index"] / args.rounds - sum(stages.values())
        result = {
            "paragraphs": len(paragraphs),
            "passages": n,
            "slices": len(slices),
            "chunk_size": base.chunk_size,
            "batch_size": embedder.batch_size,
            "mean_tokens": round(sum(tokens) / n, 1),
            "rounds": args.rounds,
            "total_s": {k: round(v, 3) for k, v in total.items()},
            "passages_per_s": {k: round(v, 2) for k, v in rate.items()},
            "ratio_embed_vs_raw": round(rate["embed"] / rate["raw"], 3),
            "ratio_index_vs_raw": round(rate["index"] / rate["raw"], 3),
            "ratio_index_vs_raw_per_slice": {
                "min": round(min(pair_ratios), 3),
                "median": round(statistics.median(pair_ratios), 3),
                "max": round(max(pair_ratios), 3),
            },
            "index_stages_s": {k: round(v, 3) for k, v in stages.items()},
            "peak_rss_over_baseline_mb": peaks,
            "peak_rss_mb": peak_rss_mb(),
            "backend": args.backend,
            "quantization": args.quantization,
            "target": f"index passages/s >= {target} x raw encode",
            "target_met": rate["index"] / rate["raw"] >= target,
        }
        print(f"raw encode   {rate['raw']:7.1f} passages/s")
        print(f"embed        {rate['embed']:7.1f} passages/s  {result['ratio_embed_vs_raw']:.3f}x raw")
        print(
            f"index_paths  {rate['index']:7.1f} passages/s  {result['ratio_index_vs_raw']:.3f}x raw  (target >= "
            f"{target}: {'met' if result['target_met'] else 'NOT met'}); "
            f"per slice min {min(pair_ratios):.3f} median {statistics.median(pair_ratios):.3f} max "
            f"{max(pair_ratios):.3f}"
        )
        print("index_paths stages per round: " + ", ".join(f"{k} {v:.2f}s" for k, v in stages.items()))
        print("peak RSS over baseline (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
        sides = {"torch": reference} | (
            {} if args.backend == "torch" else {f"{args.backend}-{args.quantization}": embedder}
        )
        if args.query_rounds and len(sides) > 1:
            import json

            data = json.loads(args.squad.read_text(encoding="utf-8"))["data"]
            questions = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]][:500]
            query = result["query_embedding"] = query_latency(sides, questions, args.query_rounds)
            ours = query[f"{args.backend}-{args.quantization}"]["p50_ms"]
            result["query_p50_speedup"] = round(query["torch"]["p50_ms"] / ours, 3)
            print(
                f"query embedding p50: torch {query['torch']['p50_ms']:.2f} ms, {args.backend} {args.quantization} "
                f"{ours:.2f} ms = {result['query_p50_speedup']:.2f}x (target >= 2)"
            )
        if args.squad_questions:
            # Every ONNX build against torch in one run (they share the torch index, the slowest to build).
            if args.backend == "onnx":
                other = "int8" if args.quantization == "none" else "none"
                sides[f"onnx-{other}"] = build_embedder(base.model_copy(update={"embedding_quantization": other}))
            result["squad_retrieval"] = squad_retrieval(args.squad, work, base, sides, args.squad_questions, args.seed)
        result["load_average_end"] = load_average()
        if not args.no_json:
            print("wrote", write_json("index", result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
