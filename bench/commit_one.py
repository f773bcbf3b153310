"""Committing one article into an index of ~100k passages (issue #15: "under 1 s"), before and after segments.

The archive is synthetic, stated as such: N passages of 60 random words from a 30,000-word vocabulary, ten to
a document, with random unit vectors (384-d, MiniLM's width) and random MinHash signatures; the article added
is one real bundled news article, embedded by the hashing embedder (the model's cost is not the commit's).
FAISS is flat (RAG_FAISS_KIND=flat) on both sides, so "before" does not also pay an HNSW rebuild.

    before  the whole-generation write of rag/storage/index.py before segments, copied below (`old_commit`): every
            article, passage, vector, BM25 token list and the rebuilt BM25 model into a new gen-NNNNNN/, fsynced,
            then CURRENT flipped
    after   rag.storage.segments.commit: the article's segment and a new manifest, fsynced, then CURRENT flipped
Both commit the same in-memory index, after the same apply_articles. Also timed: loading the segmented index
(what `rag index one.txt` pays first, before and after alike), apply_articles, and building BM25 over the new
rows (the API does it before serving the new index; the old commit did it inside the write).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

DIM = 384
PER_DOC = 10


def synthetic_index(root: Path, passages: int, settings):
    from rag.core.types import Article, ArticleMeta, Passage
    from rag.ingest.batches import passage_text_for_embedding
    from rag.storage.bm25 import LexicalIndex
    from rag.storage.faiss_store import SegmentedFaissStore, faiss_options
    from rag.storage.index import Index
    from rag.storage.manifest import DocumentRecord, Manifest
    from rag.text.syndication import NUM_PERM, Signatures

    rng, nrng = random.Random(5), np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(30_000)]
    docs = passages // PER_DOC
    manifest = Manifest(
        embedding_model="hashing-384",
        embedding_backend="hashing",
        dimension=DIM,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        vector_backend="faiss",
        fold_threshold=settings.syndication_threshold,
    )
    articles, rows = {}, []
    for d in range(docs):
        doc_id = f"doc{d:06d}"
        texts = [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(PER_DOC)]
        body = "\n\n".join(texts)
        meta = ArticleMeta(title=f"Story {d}", date=f"2024-{1 + d % 12:02d}-{1 + d % 28:02d}")
        articles[doc_id] = Article(doc_id=doc_id, text=body, meta=meta, content_hash=f"{d:064x}")
        start = 0
        for n, text in enumerate(texts):
            rows.append(
                Passage(
                    passage_id=f"{doc_id}#{n}",
                    doc_id=doc_id,
                    ordinal=n,
                    text=text,
                    start=start,
                    end=start + len(text),
                    meta=meta,
                )
            )
            start += len(text) + 2
        manifest.documents[doc_id] = DocumentRecord(
            doc_id=doc_id,
            content_hash=f"{d:064x}",
            passages=PER_DOC,
            title=meta.title,
            date=meta.date,
            indexed_at="",
            group=doc_id,
        )
    vectors = nrng.normal(size=(len(rows), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = SegmentedFaissStore(DIM, [], **faiss_options(settings))
    store.apply(add_ids=[p.passage_id for p in rows], add_vectors=vectors, remove_ids=[])
    lexical = LexicalIndex()
    lexical.apply(
        add=[(p.passage_id, passage_text_for_embedding(p)) for p in rows], remove_ids=set()
    )  # as rag/ingest/indexing.py does
    signatures = Signatures({d: nrng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32) for d in articles})
    return Index(root, manifest, articles, rows, store, lexical, signatures)


def old_commit(index, root: Path) -> None:
    """rag/index.py's commit_generation and _write_generation before segments (main 6857f10), minus the
    pruning."""
    from rag.storage.manifest import fsync_dir, write_atomic

    previous = (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else "gen-000000"
    number = int(previous.split("-")[1]) + 1
    tmp, final = root / f"tmp-{number:06d}-{os.getpid()}", root / f"gen-{number:06d}"
    tmp.mkdir(parents=True)
    for name, rows in (("articles.jsonl", index.articles.values()), ("passages.jsonl", index.passages)):
        with (tmp / name).open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(row.model_dump_json() + "\n")
    ids, vectors = zip(
        *[(pid, v) for batch_ids, batch in index.store.iter_vectors() for pid, v in zip(batch_ids, batch)]
    )
    np.save(tmp / "vectors.npy", np.stack(vectors))
    (tmp / "vector_ids.json").write_text(__import__("json").dumps(list(ids)))
    index.lexical.save(tmp)  # bm25_tokens.jsonl and the bm25s model, built over every row
    index.signatures.save(tmp)
    (tmp / "manifest.json").write_text(index.manifest.model_dump_json(indent=2))
    folders = [tmp]
    for path in tmp.rglob("*"):
        if path.is_dir():
            folders.append(path)
        else:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)
    os.replace(tmp, final)
    fsync_dir(root)
    write_atomic(root / "CURRENT", final.name.encode())


def commit_one(work: Path, passages: int, rounds: int) -> dict:
    from rag.core.settings import Settings
    from rag.ingest.batches import Batch, IndexReport
    from rag.ingest.corpus import load_article
    from rag.ingest.indexing import apply_articles
    from rag.storage.loading import load_index
    from rag.storage.segments import commit, rewrite
    from tests.fakes import HashingEmbedder

    settings = Settings(_env_file=None, index_dir=work / "after", faiss_kind="flat")
    embedder = HashingEmbedder(DIM)
    start = time.perf_counter()
    base = synthetic_index(settings.index_dir, passages, settings)
    rewrite(base, settings)
    print(
        f"  synthetic index of {len(base.passages)} passages / {len(base.articles)} documents written in "
        f"{time.perf_counter() - start:.0f}s",
        flush=True,
    )
    corpus = Path(__file__).resolve().parent.parent / "data" / "corpus"
    article = load_article(sorted(corpus.glob("*.txt"))[0])
    seconds: dict[str, list[float]] = {
        k: []
        for k in ("load", "apply", "before: whole-generation commit", "after: segment commit", "BM25 build for serving")
    }
    for round_no in range(rounds):
        t = time.perf_counter()
        index = load_index(settings, embedding_model=embedder.name, dimension=DIM)
        seconds["load"].append(time.perf_counter() - t)
        item = article.model_copy(update={"doc_id": f"new{round_no}", "content_hash": f"{round_no:x}" * 8})
        t = time.perf_counter()
        report = IndexReport()
        batch = Batch(index, settings, embedder, report)
        batch.add(item, "new.txt", article.text.encode())
        index, change = apply_articles(index, settings, embedder, batch, [], report)
        seconds["apply"].append(time.perf_counter() - t)
        t = time.perf_counter()
        commit(index, settings, change)
        seconds["after: segment commit"].append(time.perf_counter() - t)
        t = time.perf_counter()
        index.lexical.warm()
        seconds["BM25 build for serving"].append(time.perf_counter() - t)
        index.lexical._bm25 = None  # as after apply_articles: the old commit built it inside its write
        old_root = work / "before"
        t = time.perf_counter()
        old_commit(index, old_root)
        seconds["before: whole-generation commit"].append(time.perf_counter() - t)
        shutil.rmtree(old_root)
        print(f"  round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in seconds.items()), flush=True)
    medians = {k: round(statistics.median(v), 3) for k, v in seconds.items()}
    return {
        "passages": len(base.passages),
        "documents": len(base.articles),
        "rounds": rounds,
        "median_s": medians,
        "target_met": medians["after: segment commit"] < 1.0,
    }


def main() -> None:
    """`python bench/commit_one.py` alone (`bench/index.py --commit-one N` runs the same and writes the JSON)."""
    import argparse
    import shutil
    import tempfile

    import common  # noqa: F401  puts this checkout's rag/ first on sys.path, as every bench script does

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="1,000 passages, one round")
    args = parser.parse_args()
    if args.smoke:
        args.passages, args.rounds = 1000, 1
    work = Path(tempfile.mkdtemp(prefix="newsrag-bench-commit-"))
    try:
        result = commit_one(work, args.passages, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("median: " + ", ".join(f"{k} {v:.3f}s" for k, v in result["median_s"].items()))


if __name__ == "__main__":
    main()
