"""Bringing documents into the index: diff by content hash, embed only what changed, commit a generation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, Field

from rag.chunking import chunk_article, url_slug
from rag.corpus import article_from_bytes, iter_article_paths, validate_doc_id
from rag.dedup import fold
from rag.embedder import Embedder, embedder_build
from rag.errors import BadInputError, DocumentNotFoundError, RagError, TooLargeError
from rag.index import (
    DocumentRecord,
    Index,
    IndexLock,
    _fsync_dir,
    _now,
    commit_generation,
    documents_dir,
    load_index,
    make_dir,
    storage_errors,
    write_atomic,
)
from rag.settings import Settings
from rag.types import Article, Passage

EMBED_BATCH = 512  # texts per progress step; the embedder batches further inside
P = ParamSpec("P")
R = TypeVar("R")


def writes_index(fn: Callable[P, R]) -> Callable[P, R]:
    """For the commands that change the index (their first argument is the Settings): a filesystem failure
    anywhere in them (stored copies, lock, generation) is a StorageError naming the index directory."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        settings = args[0]
        assert isinstance(settings, Settings)
        with storage_errors(settings.index_dir):
            return fn(*args, **kwargs)

    return wrapper


class SkippedFile(BaseModel):
    path: str
    reason: str


class IndexReport(BaseModel):
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    regrouped: bool = False  # syndicated-copy groups changed without a document changing (a new threshold)
    skipped: list[SkippedFile] = Field(default_factory=list)
    passages_embedded: int = 0
    generation: int = 0
    total_documents: int = 0
    total_passages: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.regrouped)


ProgressFn = Callable[[int, int], None]  # (done, total) passages embedded


def embed_passages(embedder: Embedder, passages: list[Passage], progress: ProgressFn | None = None) -> np.ndarray:
    if not passages:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    texts = [passage_text_for_embedding(p) for p in passages]
    # Longest first over the whole set, not per progress step: the embedder pads each batch to its longest
    # text, and sorting only within 512-text steps leaves mixed lengths (padding) in every batch.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        vectors[rows] = embedder.embed([texts[i] for i in rows])
        if progress:
            progress(min(start + EMBED_BATCH, len(passages)), len(passages))
    return vectors


def passage_text_for_embedding(passage: Passage) -> str:
    """What both retrievers index for a passage. The headline gives the first passage the context its sentences
    assume ("the council" of which story?) and the words readers ask with; BM25 reads it too, since the cleaner
    takes the headline out of the body. Without a headline, the url's slug stands in."""
    head = (passage.meta.title or url_slug(passage.meta.url)) if passage.ordinal == 0 else None
    return f"{head}. {passage.text}" if head else passage.text


def _store_raw(settings: Settings, article: Article, name: str, data: bytes) -> str:
    # No directory fsync per file: apply_articles syncs the folder once for the batch, before the generation
    # that names these files can go live (a sync per file was over half the cost: bench/index.py).
    folder = documents_dir(settings)
    make_dir(folder)
    stored_as = article.doc_id + Path(name).suffix.lower()
    write_atomic(folder / stored_as, data, sync_dir=False)
    return stored_as


def apply_articles(
    index: Index,
    settings: Settings,
    embedder: Embedder,
    incoming: list[tuple[Article, str, bytes]],
    remove_ids: list[str],
    report: IndexReport,
    progress: ProgressFn | None = None,
) -> Index:
    """Mutate `index` in memory: drop removed/changed documents, add new passages. Nothing is written yet."""
    by_hash = {rec.content_hash: rec.doc_id for rec in index.manifest.documents.values()}
    groups_before = {d: rec.group for d, rec in index.manifest.documents.items()}
    fresh: list[tuple[Article, list[Passage], str, bytes]] = []
    for article, name, data in incoming:
        old = index.manifest.documents.get(article.doc_id)
        if old is not None and old.content_hash == article.content_hash:
            report.unchanged.append(article.doc_id)
            continue
        twin = by_hash.get(article.content_hash)
        if twin is not None and twin != article.doc_id:
            report.skipped.append(SkippedFile(path=name, reason=f"same content as document {twin} already indexed"))
            continue
        passages = chunk_article(article, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        if not passages:
            report.skipped.append(SkippedFile(path=name, reason="no text left after cleaning"))
            continue
        (report.updated if old is not None else report.added).append(article.doc_id)
        by_hash[article.content_hash] = article.doc_id
        fresh.append((article, passages, name, data))

    drop_docs = set(remove_ids) | {a.doc_id for a, _, _, _ in fresh}
    drop_passages = {p.passage_id for p in index.passages if p.doc_id in drop_docs}
    new_passages = [p for _, ps, _, _ in fresh for p in ps]
    if new_passages:
        keeping = sum(1 for doc_id in index.manifest.documents if doc_id not in drop_docs)
        index.manifest.adopt_embedding_build(*embedder_build(embedder), keeping=keeping)
    vectors = embed_passages(embedder, new_passages, progress)
    report.passages_embedded = len(new_passages)

    index.store.apply(add_ids=[p.passage_id for p in new_passages], add_vectors=vectors, remove_ids=drop_passages)
    index.lexical.apply(add=[(p.passage_id, passage_text_for_embedding(p)) for p in new_passages], remove_ids=drop_passages)
    index.passages = [p for p in index.passages if p.doc_id not in drop_docs] + new_passages
    index.passage_by_id = {p.passage_id: p for p in index.passages}
    for doc_id in drop_docs:
        index.articles.pop(doc_id, None)
        index.manifest.documents.pop(doc_id, None)
    for article, passages, name, data in fresh:
        stored_as = _store_raw(settings, article, name, data)
        index.articles[article.doc_id] = article.model_copy(update={"removed_lines": []})
        index.manifest.documents[article.doc_id] = DocumentRecord(
            doc_id=article.doc_id,
            content_hash=article.content_hash,
            passages=len(passages),
            title=article.meta.title,
            date=article.meta.date,
            source=article.meta.source,
            stored_as=stored_as,
            indexed_at=_now(),
        )
    if fresh:
        _fsync_dir(documents_dir(settings))
    report.removed.extend(d for d in remove_ids)
    _fold_copies(index, settings, [a.doc_id for a, _, _, _ in fresh], drop_docs, groups_before, report)
    return index


def _fold_copies(index: Index, settings: Settings, added: list[str], dropped: set[str], before: dict[str, str | None], report: IndexReport) -> None:
    """Group syndicated copies after a change: new documents join the copies they match, and a group that lost
    a member (its representative, say) is re-linked from the survivors' own similarities (rag/dedup.py)."""
    docs = index.manifest.documents
    threshold = settings.syndication_threshold if settings.fold_syndicated else None
    rethreshold = index.manifest.fold_threshold != threshold and bool(docs)
    if threshold is None:
        for record in docs.values():
            record.group = None
        index.signatures.keep_only(docs)
    else:
        lost = {before[d] for d in dropped if before.get(d)}
        groups = {d: None if rethreshold else r.group for d, r in docs.items()}
        regrouped = fold(
            {d: index.articles[d].text for d in docs},
            {d: r.date for d, r in docs.items()},
            groups,
            index.signatures,
            added=added,
            broken=[d for d in docs if before.get(d) in lost],
            threshold=threshold,
        )
        for doc_id, group in regrouped.items():
            docs[doc_id].group = group
    report.regrouped = report.regrouped or rethreshold
    index.manifest.fold_threshold = threshold


def _finish(index: Index, settings: Settings, report: IndexReport, removed_files: list[str]) -> Index:
    if report.changed or index.generation == 0:
        # The stored copies say what the index is meant to hold, so they change before the commit, like new
        # copies are stored before it: after a crash anywhere, a retry or `rag reindex` completes the write.
        # (Unlinked after the commit, a crash in between left a deleted document's copy for reindex to revive,
        # while retrying the delete said "no such document".)
        for name in removed_files + _superseded_copies(index, settings):
            (documents_dir(settings) / name).unlink(missing_ok=True)
        index = commit_generation(index, settings)
    report.generation = index.generation
    report.total_documents = len(index.manifest.documents)
    report.total_passages = len(index.passages)
    return index


def _superseded_copies(index: Index, settings: Settings) -> list[str]:
    """Stored copies of live documents under a name the manifest no longer uses (story.html re-sent as
    story.txt): left behind, `rag reindex` would find two files for one id and could restore the old one."""
    folder = documents_dir(settings)
    if not folder.is_dir():
        return []
    live = {record.stored_as for record in index.manifest.documents.values()}
    return [
        path.name for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.name not in live and path.stem in index.manifest.documents
    ]


def _read_inputs(paths: list[Path], settings: Settings, report: IndexReport) -> list[tuple[Article, str, bytes]]:
    incoming: list[tuple[Article, str, bytes]] = []
    seen: set[str] = set()
    for path in iter_article_paths(paths):
        try:
            size = path.stat().st_size
            if size > settings.max_upload_bytes:  # refused before reading: a huge file never reaches memory
                raise TooLargeError(f"{path.name}: {size} bytes exceeds the limit of {settings.max_upload_bytes} bytes (RAG_MAX_UPLOAD_BYTES)")
            data = path.read_bytes()
            article = article_from_bytes(path.stem, path.name, data, max_bytes=settings.max_upload_bytes)
        except (OSError, RagError) as exc:
            report.skipped.append(SkippedFile(path=str(path), reason=str(exc) if isinstance(exc, RagError) else f"unreadable: {exc.strerror or exc}"))
            continue
        if article.doc_id in seen:
            report.skipped.append(SkippedFile(path=str(path), reason=f"another file in this batch already has id {article.doc_id}"))
            continue
        seen.add(article.doc_id)
        incoming.append((article, path.name, data))
    return incoming


@writes_index
def index_paths(settings: Settings, embedder: Embedder, paths: list[Path], progress: ProgressFn | None = None) -> tuple[Index, IndexReport]:
    """`rag index PATH...`: add new files, replace changed ones, skip unchanged ones without embedding."""
    missing = [str(p) for p in paths if not p.exists()]
    report = IndexReport(skipped=[SkippedFile(path=m, reason="no such file or directory") for m in missing])
    with IndexLock(settings.index_dir):
        index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        incoming = _read_inputs([p for p in paths if p.exists()], settings, report)
        index = apply_articles(index, settings, embedder, incoming, [], report, progress)
        return _finish(index, settings, report, []), report


@writes_index
def add_document(settings: Settings, embedder: Embedder, name: str, data: bytes, doc_id: str | None = None) -> tuple[Index, IndexReport]:
    """An upload: validated, stored, indexed. Raises instead of skipping, since the caller sent one file."""
    if len(data) > settings.max_upload_bytes:
        from rag.errors import TooLargeError

        raise TooLargeError(f"{name} is {len(data)} bytes; the limit is {settings.max_upload_bytes} (RAG_MAX_UPLOAD_BYTES)")
    doc_id = validate_doc_id(doc_id or Path(name).stem)
    article = article_from_bytes(doc_id, name, data, max_bytes=settings.max_upload_bytes)
    return add_article(settings, embedder, (article, name, data), label=name)


def add_article(settings: Settings, embedder: Embedder, item: tuple[Article, str, bytes], *, label: str) -> tuple[Index, IndexReport]:
    """One document a caller sent (an upload, a URL), indexed in its own commit; raises instead of skipping."""
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        index = apply_articles(index, settings, embedder, [item], [], report)
        if report.skipped:
            raise BadInputError(f"{label}: {report.skipped[0].reason}")
        return _finish(index, settings, report, []), report


def commit_articles(settings: Settings, embedder: Embedder, incoming: list[tuple[Article, str, bytes]], report: IndexReport) -> Index:
    """Add or replace these articles on the current generation and commit it. The caller holds the IndexLock."""
    index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
    index = apply_articles(index, settings, embedder, incoming, [], report)
    return _finish(index, settings, report, [])


@writes_index
def remove_documents(settings: Settings, embedder: Embedder, doc_ids: list[str]) -> tuple[Index, IndexReport]:
    for doc_id in doc_ids:
        validate_doc_id(doc_id)
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension)
        unknown = [d for d in doc_ids if d not in index.manifest.documents]
        if unknown:
            raise DocumentNotFoundError(f"no document {', '.join(unknown)} in the index (see `rag info`)")
        stored = [index.manifest.documents[d].stored_as for d in doc_ids]
        index = apply_articles(index, settings, embedder, [], doc_ids, report)
        return _finish(index, settings, report, [s for s in stored if s]), report


@writes_index
def reindex(settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: ProgressFn | None = None) -> tuple[Index, IndexReport]:
    """Rebuild from the stored raw documents (after a crash, a settings change, or with --rebuild from scratch)."""
    folder = documents_dir(settings)
    files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        if rebuild:
            from rag.index import Index as _Index

            index = _Index.empty(settings.index_dir, settings, embedding_model=embedder.name, dimension=embedder.dimension)
            index.store.reset()  # a self-persisting store (Milvus) still holds the previous build's vectors
        else:
            index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        incoming = _read_inputs(files, settings, report)
        present = {a.doc_id for a, _, _ in incoming}
        gone = [d for d in index.manifest.documents if d not in present]
        index = apply_articles(index, settings, embedder, incoming, gone, report, progress)
        if rebuild:
            report.added.extend(report.unchanged)
        return _finish(index, settings, report, []), report
