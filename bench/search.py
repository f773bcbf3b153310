"""Vector search at 10k..1M: flat vs HNSW (vs IVF), our FaissStore against raw faiss, and end-to-end retrieval.

Synthetic 384-d unit vectors stand in for MiniLM embeddings. They are clustered (a Gaussian around one of
`n / 100` random centres) because real sentence embeddings are: uniform random vectors on the sphere are the
worst case for graph search and would understate HNSW recall at a given efSearch. `--data uniform` measures
that worst case, `--data lowrank` (32 latent dimensions) a middle ground. Queries are dataset vectors plus noise, as a
question lies near, not on, its passage.

    python bench/search.py                       # 10k, 50k, 100k; end-to-end at 100k
    python bench/search.py --full                # adds 1M (flat 1.5 GB, HNSW build takes minutes)
    python bench/search.py --sizes 100000 --hnsw-m 16 --ef-search 32,64,128 --ivf
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from common import ROOT, load_questions, peak_rss_mb, percentile, print_header, rss_mb, summary_ms, timed, write_json

DIM = 384
K = 10


def synthetic_vectors(n: int, dim: int, *, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    elif kind == "lowrank":
        # 32 latent dimensions spread over 384: sentence embeddings' intrinsic dimension is of that order.
        basis = rng.standard_normal((32, dim), dtype=np.float32)
        x = rng.standard_normal((n, 32), dtype=np.float32) @ basis
    else:
        centres = rng.standard_normal((max(1, n // 100), dim), dtype=np.float32)
        x = centres[rng.integers(0, len(centres), n)]
        x += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)  # ~0.5 cosine within a cluster, like one topic
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_queries(base: np.ndarray, nq: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    q = base[rng.integers(0, len(base), nq)] + 0.05 * rng.standard_normal((nq, base.shape[1]), dtype=np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t)) for f, t in zip(found, truth))
    return hits / truth.size


def clock(fn: Any, *args: Any) -> tuple[float, float]:
    """(wall, CPU of this thread) seconds. Single-threaded work's CPU time barely moves with other processes'
    load, so it is the figure to compare on a shared machine; wall time is what a caller waits."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn(*args)
    return time.perf_counter() - wall, time.thread_time() - cpu


def time_queries(calls: dict[str, Any], queries: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Each call once per query, in rotating order so no side always goes first; wall and CPU summaries."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i, q in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            w, c = clock(calls[name], q)
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {**summary_ms(wall[name]), "cpu_p50_ms": round(percentile(cpu[name], 50) * 1000, 3)} for name in calls
    }


def bench_store(
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    kind: str,
    *,
    m: int,
    efs: list[int],
    nlist: int,
    nprobe: int,
    keep: bool = False,
) -> tuple[list[dict[str, Any]], Any]:
    """Build one index through FaissStore (IVF through raw faiss, which FaissStore does not offer), then time
    our search and raw `index.search` on that same index, interleaved per query so both see the same load.
    HNSW is built once and searched at each efSearch (a search-time setting). With keep, the FaissStore is
    returned (at efs[0]) for the end-to-end run, which would otherwise build it again."""
    import faiss

    from rag.core.settings import Settings
    from rag.storage.faiss_store import build_vector_store

    ids = [f"d{i}#0" for i in range(len(vectors))]  # the passage ids end_to_end gives the same rows
    gc.collect()
    before = rss_mb()
    base: dict[str, Any] = {"n": len(vectors), "kind": kind}
    with timed() as t:
        if kind == "ivf":
            quantizer = faiss.IndexFlatIP(vectors.shape[1])
            index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors[: max(nlist * 39, 10_000)])
            index.add(vectors)
            index.nprobe = nprobe
            store = None
            base.update(nlist=nlist, nprobe=nprobe)
        else:
            store = build_vector_store(
                Settings(faiss_kind=kind, faiss_hnsw_m=m, faiss_hnsw_ef_search=efs[0]), vectors.shape[1], None
            )
            store.apply(add_ids=ids, add_vectors=vectors, remove_ids=[])
            # The segmented store as an optimised index serves it: one segment, whose FAISS index is built here
            # (as loading a segment does) and searched by both sides.
            index = store.parts[0].store._build()
    base["build_s"] = round(t["s"], 2)
    base["memory_mb"] = round(rss_mb() - before, 1)  # the store's copy of the vectors + the faiss index

    # raw: faiss as shipped (OpenMP team of omp_get_max_threads); raw_1t: the same call on one thread, which
    # is what FaissStore does per query, so ours/raw_1t is the wrapper's own cost.
    default_threads = faiss.omp_get_max_threads()

    def raw_1t(q: np.ndarray) -> None:
        faiss.omp_set_num_threads(1)
        index.search(q.reshape(1, -1), K)
        faiss.omp_set_num_threads(default_threads)

    rows = []
    for ef in efs if kind == "hnsw" else [None]:
        row = dict(base)
        if ef is not None:
            index.hnsw.efSearch = ef  # raw side: the efSearch FaissStore passes per call
            store.parts[0].store.ef_search = ef
            row.update(m=m, ef_search=ef)
        _, found = index.search(queries, K)  # batched: recall only, not timed
        row["recall_at_10"] = round(recall_at_k(found, truth), 4)
        calls = {"raw": lambda q: index.search(q.reshape(1, -1), K), "raw_1t": raw_1t}
        if store is not None:
            calls["ours"] = lambda q: store.search(q, K)
        row.update(time_queries(calls, queries))
        if store is not None:
            row["ratio_p50"] = round(row["ours"]["p50_ms"] / row["raw"]["p50_ms"], 3)
            row["ratio_p50_vs_1t"] = round(row["ours"]["p50_ms"] / row["raw_1t"]["p50_ms"], 3)
            row["ratio_cpu_vs_1t"] = round(row["ours"]["cpu_p50_ms"] / row["raw_1t"]["cpu_p50_ms"], 3)
        rows.append(row)
    if store is not None and kind == "hnsw":
        store.parts[0].store.ef_search = efs[0]
        index.hnsw.efSearch = efs[0]
    kept = store if keep else None
    index = store = None  # the memory back before the next size (a `del` would leave the closures' names unbound)
    gc.collect()
    return rows, kept


def query_embedding(n: int) -> dict[str, Any]:
    """Real MiniLM on the bundled (short) questions: our embed_query path vs raw SentenceTransformer.encode."""
    from rag.core.settings import Settings
    from rag.models.embedding import build_embedder

    questions = [
        r["question"]
        for r in load_questions(
            [ROOT / "data/questions/dev_questions.jsonl", ROOT / "data/questions/nato_questions.jsonl"]
        )
    ]
    import torch

    default_threads = torch.get_num_threads()  # the library's own default, before our embedder changes it
    embedder = build_embedder(Settings())
    # With RAG_EMBEDDING_BACKEND=onnx "ours" is the ONNX embedder and raw stays PyTorch's encode (issue #15).
    reference = (
        embedder
        if embedder.backend == "torch"
        else build_embedder(Settings(embedding_backend="torch", embedding_quantization="none"))
    )
    model = reference._model
    for q in questions[:3]:  # warm-up: first calls pay for lazy allocations
        embedder.embed([q])

    def raw_encode(q: str) -> None:
        torch.set_num_threads(default_threads)  # what the library does untouched; ours then sets its own
        model.encode([q], batch_size=1, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    for q in questions[:3]:
        raw_encode(q)
    ours, raw = [], []
    for i in range(n):
        q = questions[i % len(questions)]
        ours.append(clock(embedder.embed, [q])[0])
        raw.append(clock(raw_encode, q)[0])
    o, r = summary_ms(ours), summary_ms(raw)
    return {
        "ours": o,
        "raw": r,
        "ratio_p50": round(o["p50_ms"] / r["p50_ms"], 3),
        "raw_threads": default_threads,
        "embedder": embedder,
    }


def end_to_end(
    n: int, kind: str, args: argparse.Namespace, embedder, vectors: np.ndarray, queries: np.ndarray, store: Any = None
) -> dict[str, Any]:
    """Retriever.search over an in-memory Index: dense + BM25 + fusion, with and without embedding the query."""
    from rag.core.settings import Settings
    from rag.core.types import ArticleMeta, Passage
    from rag.search.retriever import Retriever
    from rag.storage.bm25 import LexicalIndex
    from rag.storage.faiss_store import build_vector_store
    from rag.storage.index import Index
    from rag.storage.manifest import Manifest
    from rag.text.tokens import tokenize

    rng = random.Random(7)
    vocab = sorted(
        {
            t
            for r in load_questions(
                [ROOT / "data/questions/nato_questions.jsonl", ROOT / "data/questions/dev_questions.jsonl"]
            )
            for t in tokenize(r["question"] + " " + r.get("answer", ""))
        }
    )
    vocab += [f"w{i}" for i in range(20_000)]  # a long tail, so postings are as sparse as in a real archive
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    rng.shuffle(weights)
    settings = Settings(faiss_kind=kind, faiss_hnsw_m=args.hnsw_m, faiss_hnsw_ef_search=args.ef_search[0])
    with timed() as t:
        tokens = [rng.choices(vocab, weights, k=args.words) for _ in range(n)]
        meta = ArticleMeta()
        passages = [
            Passage(passage_id=f"d{i}#0", doc_id=f"d{i}", ordinal=0, text=" ".join(toks), start=0, end=1, meta=meta)
            for i, toks in enumerate(tokens)
        ]
        if store is None:
            store = build_vector_store(settings, DIM, None)
            store.apply(add_ids=[p.passage_id for p in passages], add_vectors=vectors[:n], remove_ids=[])
            store.parts[0].store._build()
        lexical = LexicalIndex()
        # Token lists share the vocabulary's strings: tokenising 100k random texts again would only cost time.
        lexical.ids, lexical.tokens = [p.passage_id for p in passages], tokens
        lexical._build()
        manifest = Manifest(
            embedding_model="synthetic",
            dimension=DIM,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            vector_backend="faiss",
        )
        index = Index(ROOT / "build" / "bench-synthetic", manifest, {}, passages, store, lexical)
    retriever = Retriever(index, embedder=embedder, settings=settings)
    qtexts = [" ".join(rng.choices(vocab[:500], k=7)) for _ in range(len(queries))]
    for i in range(5):
        retriever.search(qtexts[i], query_vector=queries[i])
    timed_calls = time_queries(
        {
            "given_vector": lambda pair: retriever.search(pair[0], query_vector=pair[1]),
            "with_query_embedding": lambda pair: retriever.search(pair[0]),
        },
        list(zip(qtexts, queries)),
    )
    row = {"n": n, "kind": store.kind, "build_s": round(t["s"], 1), **timed_calls}
    del index, store, lexical, passages, tokens
    gc.collect()
    return row


def print_row(row: dict[str, Any]) -> None:
    kind = row["kind"]
    ours = (
        f"ours p50 {row['ours']['p50_ms']:.3f} p99 {row['ours']['p99_ms']:.3f} ms cpu {row['ours']['cpu_p50_ms']:.3f} "
        "ms "
        f"({row['ratio_p50']:.2f}x raw, {row['ratio_p50_vs_1t']:.2f}x raw 1-thread, cpu {row['ratio_cpu_vs_1t']:.2f}x)"
        if "ours" in row
        else "(raw faiss only)"
    )
    label = kind + (
        f" M={row['m']} ef={row['ef_search']}"
        if kind == "hnsw"
        else f" nprobe={row['nprobe']}"
        if kind == "ivf"
        else ""
    )
    print(
        f"{row['n']:>9,} {label:<18} build {row['build_s']:>7.2f}s mem {row['memory_mb']:>7.1f} MB recall@10 "
        f"{row['recall_at_10']:.3f} "
        f"raw p50 {row['raw']['p50_ms']:.3f} p99 {row['raw']['p99_ms']:.3f} ms, 1-thread p50 "
        f"{row['raw_1t']['p50_ms']:.3f} cpu {row['raw_1t']['cpu_p50_ms']:.3f} ms; {ours}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,50000,100000", help="comma-separated vector counts")
    parser.add_argument("--full", action="store_true", help="add 1,000,000 to --sizes and to the end-to-end run")
    parser.add_argument("--data", choices=["clustered", "lowrank", "uniform"], default="clustered")
    parser.add_argument("--queries", type=int, default=300, help="timed single queries per index")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument(
        "--ef-search",
        default=None,
        help="comma-separated efSearch values to try (default: Settings); the first serves end to end",
    )
    parser.add_argument("--ivf", action="store_true", help="also IVF-Flat, nlist = 4*sqrt(n)")
    parser.add_argument("--kinds", default="flat,hnsw", help="which of flat,hnsw to sweep (ivf via --ivf)")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument(
        "--ann-threshold",
        type=int,
        default=None,
        help="flat below, HNSW from this size, for end-to-end (default: Settings)",
    )
    parser.add_argument(
        "--e2e", default="100000", help="comma-separated sizes for end-to-end Retriever.search ('' to skip)"
    )
    parser.add_argument("--words", type=int, default=60, help="words per synthetic passage (BM25)")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="2,000 vectors, 20 queries: that it runs, in seconds")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.e2e, args.queries, args.full, args.ivf = "2000", "2000", 20, False, True
    from rag.core.settings import Settings

    defaults = Settings()
    args.ef_search = [int(x) for x in (args.ef_search or str(defaults.faiss_hnsw_ef_search)).split(",")]
    sizes = sorted({int(x) for x in args.sizes.split(",") if x} | ({1_000_000} if args.full else set()))
    e2e_sizes = sorted({int(x) for x in args.e2e.split(",") if x} | ({1_000_000} if args.full else set()))

    print_header("search")
    import faiss

    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}, data {args.data}", flush=True)
    biggest = max(sizes + e2e_sizes)
    with timed() as t:
        all_vectors = synthetic_vectors(biggest, DIM, kind=args.data, seed=1)
    print(f"generated {biggest:,} vectors in {t['s']:.1f}s", flush=True)

    threshold = args.ann_threshold or defaults.faiss_ann_threshold
    auto_kind = lambda n: "hnsw" if n >= threshold else "flat"
    rows = []
    kept: dict[int, Any] = {}
    for n in sizes:
        vectors = all_vectors[:n]
        queries = make_queries(vectors, args.queries, seed=n)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(vectors)
        _, truth = exact.search(queries, K)
        del exact
        wanted = args.kinds.split(",")
        kinds = [k for k in ("flat", "hnsw") if k in wanted] + (["ivf"] if args.ivf else [])
        for kind in kinds:
            keep = n in e2e_sizes and kind == auto_kind(n)
            built, store = bench_store(
                vectors,
                queries,
                truth,
                kind,
                m=args.hnsw_m,
                efs=args.ef_search,
                nlist=int(4 * n**0.5),
                nprobe=args.nprobe,
                keep=keep,
            )
            rows.extend(built)
            if store is not None:
                kept[n] = store
            for row in built:
                print_row(row)

    emb = query_embedding(10 if args.smoke else 200)
    embedder = emb.pop("embedder")
    print(
        f"query embedding (MiniLM, short questions): ours p50 {emb['ours']['p50_ms']:.2f} ms, raw encode p50 "
        f"{emb['raw']['p50_ms']:.2f} ms ({emb['ratio_p50']:.2f}x)",
        flush=True,
    )

    e2e = []
    for n in e2e_sizes:
        queries = make_queries(all_vectors[:n], min(args.queries, 200), seed=n + 5)
        row = end_to_end(n, auto_kind(n), args, embedder, all_vectors, queries, store=kept.pop(n, None))
        recall = [
            ix["recall_at_10"]
            for ix in rows
            if ix["n"] == n
            and ix["kind"] == row["kind"]
            and ix.get("ef_search", args.ef_search[0]) == args.ef_search[0]
        ]
        row["dense_recall_at_10"] = recall[0] if recall else None
        row["ann_threshold"] = threshold
        e2e.append(row)
        print(
            f"end-to-end Retriever.search at {n:,} ({row['kind']}, dense recall@10 {row['dense_recall_at_10']}): given "
            f"the vector p50 {row['given_vector']['p50_ms']:.2f} "
            f"p99 {row['given_vector']['p99_ms']:.2f} ms (cpu {row['given_vector']['cpu_p50_ms']:.2f}); with query "
            f"embedding p50 {row['with_query_embedding']['p50_ms']:.2f} "
            f"p99 {row['with_query_embedding']['p99_ms']:.2f} ms (cpu {row['with_query_embedding']['cpu_p50_ms']:.2f})",
            flush=True,
        )
    print(f"peak RSS {peak_rss_mb()} MB", flush=True)
    if not args.no_json:
        print(
            "wrote",
            write_json(
                "search",
                {
                    "data": args.data,
                    "indexes": rows,
                    "query_embedding": emb,
                    "end_to_end": e2e,
                    "peak_rss_mb": peak_rss_mb(),
                },
            ),
        )


if __name__ == "__main__":
    main()
