"""One segment on disk: the rows of one commit or merge, written once into segments/seg-NNNNNN/ and never changed.

Files, rows in the same order in each:
    passages.jsonl      one Passage a line
    articles.jsonl      the Article of each document written here
    bm25_tokens.jsonl   [passage_id, tokens] a line (rag.storage.bm25.tokenize), so loading never re-tokenises
    vectors.npy, vector_ids.json   FAISS only (Milvus keeps the vectors itself); hnsw.faiss when the segment is big
    minhash.npz         the MinHash signatures this write computed (rag/text/syndication.py)
    bm25/               a bm25s model over exactly these rows, kept when the segment is the whole index
A segment is built in segments/tmp-*, every file and the folder fsynced, then renamed into place; only a
manifest that names it makes it part of the index (rag/storage/segments.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from rag.core.errors import IndexCorruptError
from rag.core.settings import Settings
from rag.core.types import Article, Passage
from rag.storage.bm25 import LexicalIndex
from rag.storage.faiss_store import FaissStore, faiss_options
from rag.storage.manifest import SegmentEntry, fsync_dir, make_dir
from rag.text.syndication import Signatures, save_signatures

SEGMENTS = "segments"
PREFIX = "seg-"


@dataclass
class SegmentRows:
    """What a segment holds, in memory: passages with their tokens (and vectors), the articles, signatures."""

    passages: list[Passage]
    articles: list[Article]
    tokens: list[list[str]]
    vectors: np.ndarray | None  # None: the vectors live in Milvus
    signatures: dict[str, np.ndarray]


@dataclass
class LoadedSegment:
    rows: SegmentRows
    store: FaissStore | None  # the vectors, searchable (with its graph when one was saved)
    bm25_dir: Path | None


def segments_dir(root: Path) -> Path:
    return root / SEGMENTS


def segment_number(name: str) -> int:
    return int(name.removeprefix(PREFIX))


def next_segment_name(root: Path) -> str:
    """One past every segment folder on disk, so a name is never reused while a kept generation names it."""
    folder = segments_dir(root)
    taken = [segment_number(p.name) for p in folder.glob(f"{PREFIX}*")] if folder.is_dir() else []
    return f"{PREFIX}{max(taken, default=0) + 1:06d}"


def wants_graph(settings: Settings, rows: int) -> bool:
    """An HNSW graph per segment, by the segment's own size: small commits stay exact and cheap to write."""
    return settings.faiss_kind == "hnsw" or (settings.faiss_kind == "auto" and rows >= settings.faiss_ann_threshold)


def write_jsonl(path: Path, rows: list[BaseModel]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.model_dump_json() + "\n")


def read_jsonl(path: Path, model: type[BaseModel]) -> list:
    with path.open(encoding="utf-8") as fh:
        return [model.model_validate_json(line) for line in fh if line.strip()]


def sync_tree(folder: Path) -> None:
    """Every file and then every folder under `folder` fsynced, deepest first: after a power cut a renamed
    folder must hold its entries, not just its name."""
    folders = [folder]
    for path in folder.rglob("*"):
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for path in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(path)


def write_segment(
    root: Path, name: str, rows: SegmentRows, settings: Settings, *, whole_index: bool
) -> tuple[SegmentEntry, FaissStore | None, LexicalIndex | None]:
    """Write `rows` as segment `name`, durable before it returns. Returns its manifest entry, its vectors as a
    searchable store, and (for a segment that is the whole index) the BM25 index whose model it saved."""
    folder = segments_dir(root)
    make_dir(folder)
    tmp = folder / f"tmp-{name}-{os.getpid()}-{int(time.time() * 1000)}"
    final = folder / name
    ids = [p.passage_id for p in rows.passages]
    store = lexical = None
    graph = rows.vectors is not None and wants_graph(settings, len(ids))
    try:
        tmp.mkdir()
        write_jsonl(tmp / "passages.jsonl", rows.passages)
        write_jsonl(tmp / "articles.jsonl", rows.articles)
        with (tmp / "bm25_tokens.jsonl").open("w", encoding="utf-8") as fh:
            for pid, toks in zip(ids, rows.tokens):
                fh.write(json.dumps([pid, toks], ensure_ascii=False) + "\n")
        if rows.vectors is not None:
            store = FaissStore(rows.vectors.shape[1], kind="hnsw" if graph else "flat", **faiss_options(settings))
            store.apply(add_ids=ids, add_vectors=rows.vectors, remove_ids=[])
            store.save(tmp)
        save_signatures(tmp, rows.signatures)
        if whole_index and ids:
            # Its statistics are the index's only while this segment is all there is (rag/storage/segments.py checks).
            lexical = LexicalIndex.from_rows(ids, rows.tokens)
            lexical.save_model(tmp)
        sync_tree(tmp)
        if final.exists():
            # Left by a writer killed after this rename and before a manifest named it: never live.
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(folder)  # the name is durable before any manifest names it
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entry = SegmentEntry(
        name=name, documents=len(rows.articles), passages=len(ids), graph=graph, bm25=lexical is not None
    )
    return entry, store, lexical


def read_segment(root: Path, entry: SegmentEntry, settings: Settings, dimension: int) -> LoadedSegment:
    folder = segments_dir(root) / entry.name
    current = "passages.jsonl"
    try:
        passages = read_jsonl(folder / current, Passage)
        current = "articles.jsonl"
        articles = read_jsonl(folder / current, Article)
        current = "bm25_tokens.jsonl"
        token_rows = [
            json.loads(line) for line in (folder / current).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        signatures = Signatures.load(folder).rows
        store = None
        if settings.vector_backend == "faiss":
            current = "vectors"
            store = FaissStore.load(
                folder, dimension, kind="hnsw" if entry.graph else "flat", **faiss_options(settings)
            )
    except (OSError, ValidationError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise IndexCorruptError(f"index files in segment {folder} do not load ({current}): {exc}") from exc
    ids = [p.passage_id for p in passages]
    problems = []
    if len(passages) != entry.passages or len(articles) != entry.documents:
        problems.append(
            f"{len(passages)} passages and {len(articles)} articles, the manifest says {entry.passages} and "
            f"{entry.documents}"
        )
    if [row[0] for row in token_rows] != ids:
        problems.append("its BM25 rows do not follow its passages")
    if store is not None and store.ids != ids:
        problems.append("its vectors do not follow its passages")
    if problems:
        raise IndexCorruptError(f"segment {folder} is inconsistent: " + "; ".join(problems))
    bm25 = folder / "bm25"
    rows = SegmentRows(passages, articles, [row[1] for row in token_rows], None, signatures)
    return LoadedSegment(rows, store, bm25 if entry.bm25 and bm25.is_dir() else None)
