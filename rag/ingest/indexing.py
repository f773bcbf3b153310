"""Bringing documents into the index: diff by content hash, embed only what changed, commit a change set.

Runs over many files commit every RAG_COMMIT_EVERY_ARTICLES articles or RAG_COMMIT_EVERY_S seconds: a kill
loses at most the batch in flight, and the rerun finds the committed articles unchanged (rag/ingest/batches.py).
"""

from __future__ import annotations

import functools
import glob
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from rag.core.errors import BadInputError, DocumentNotFoundError, TooLargeError
from rag.core.settings import Settings
from rag.core.types import Article
from rag.ingest.batches import (
    Batch,
    Incoming,
    IndexProgress,
    IndexReport,
    ProgressFn,
    SkippedFile,
    passage_text_for_embedding,
    read_inputs,
)
from rag.ingest.corpus import iter_article_paths, validate_doc_id
from rag.models.embedding import Embedder, embedder_build
from rag.storage.index import Index
from rag.storage.manifest import (
    ChangeSet,
    DocumentRecord,
    IndexLock,
    documents_dir,
    fsync_dir,
    make_dir,
    now_utc,
    storage_errors,
    write_atomic,
)
from rag.storage.store import load_live, open_store
from rag.text.syndication import fold

P = ParamSpec("P")
R = TypeVar("R")


def writes_index(fn: Callable[P, R]) -> Callable[P, R]:
    """For the commands that change the index (their first argument is the Settings): a filesystem failure
    anywhere in them (stored copies, lock, segments, generation) is a StorageError naming the index directory."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        settings = args[0]
        assert isinstance(settings, Settings)
        with storage_errors(settings.index_dir):
            return fn(*args, **kwargs)

    return wrapper


def _store_raw(settings: Settings, article: Article, name: str, data: bytes) -> str:
    # No directory fsync per file: apply_articles syncs the folder once for the batch, before the generation
    # that names these files can go live (a sync per file was over half the cost: bench/index.py).
    folder = documents_dir(settings)
    make_dir(folder)
    stored_as = article.doc_id + Path(name).suffix.lower()
    write_atomic(folder / stored_as, data, sync_dir=False)
    return stored_as


def apply_articles(
    index: Index, settings: Settings, embedder: Embedder, batch: Batch, remove_ids: list[str], report: IndexReport
) -> tuple[Index, ChangeSet]:
    """Mutate `index` in memory: drop removed/changed documents, add the batch's new passages. Returns the
    change for the store to commit; nothing is written yet but the stored copies of the raw documents."""
    documents = index.manifest.documents
    groups_before = {d: rec.group for d, rec in documents.items()}
    fresh = batch.fresh
    drop_docs = set(remove_ids) | {f.article.doc_id for f in fresh}
    removed = {d: documents[d].segment for d in drop_docs if d in documents}
    new_passages = [p for f in fresh for p in f.passages]
    if new_passages:
        keeping = sum(1 for doc_id in documents if doc_id not in drop_docs)
        index.manifest.adopt_embedding_build(*embedder_build(embedder), keeping=keeping)
        batch.embed()
    vectors = (
        np.concatenate([f.vectors for f in fresh]) if fresh else np.zeros((0, embedder.dimension), dtype=np.float32)
    )

    drop_passages = {p.passage_id for p in index.passages if p.doc_id in drop_docs}
    index.store.apply(add_ids=[p.passage_id for p in new_passages], add_vectors=vectors, remove_ids=drop_passages)
    index.lexical.apply(
        add=[(p.passage_id, passage_text_for_embedding(p)) for p in new_passages], remove_ids=drop_passages
    )
    tokens = index.lexical.tokens[len(index.lexical.tokens) - len(new_passages) :]
    index.passages = [p for p in index.passages if p.doc_id not in drop_docs] + new_passages
    index.passage_by_id = {p.passage_id: p for p in index.passages}
    for doc_id in drop_docs:
        index.articles.pop(doc_id, None)
        documents.pop(doc_id, None)
    stored: list[Article] = []
    # With RAG_STORE=milvus no raw copy is kept: it would be state only this replica holds (`rag reindex` refuses).
    keep_raw = settings.store == "local"
    for item in fresh:
        article = item.article
        stored_as = _store_raw(settings, article, item.name, item.data) if keep_raw else None
        stored.append(article.model_copy(update={"removed_lines": []}))
        index.articles[article.doc_id] = stored[-1]
        documents[article.doc_id] = DocumentRecord(
            doc_id=article.doc_id,
            content_hash=article.content_hash,
            passages=len(item.passages),
            title=article.meta.title,
            date=article.meta.date,
            source=article.meta.source,
            stored_as=stored_as,
            indexed_at=now_utc(),
        )
    if fresh and keep_raw:
        fsync_dir(documents_dir(settings))
    report.removed.extend(d for d in remove_ids)
    _fold_copies(index, settings, [f.article.doc_id for f in fresh], drop_docs, groups_before, report)
    change = ChangeSet(
        articles=stored,
        passages=new_passages,
        vectors=vectors,
        tokens=tokens,
        signatures=index.signatures.take_computed(),
        removed=removed,
    )
    return index, change


def _fold_copies(
    index: Index,
    settings: Settings,
    added: list[str],
    dropped: set[str],
    before: dict[str, str | None],
    report: IndexReport,
) -> None:
    """Group syndicated copies after a change: new documents join the copies they match, and a group that lost
    a member (its representative, say) is re-linked from the survivors' own similarities (rag/text/syndication.py)."""
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


def _finish(
    index: Index,
    settings: Settings,
    report: IndexReport,
    removed_files: list[str],
    change: ChangeSet,
    *,
    serve: bool = False,
) -> Index:
    """Commit one batch's change (and merge segments if there are too many now). `serve`: the caller answers
    from the returned index at once (the API), so its BM25 model is built here rather than on the first search."""
    if report.changed or index.generation == 0:
        # The stored copies say what the index is meant to hold, so they change before the commit, like new
        # copies are stored before it: after a crash anywhere, a retry or `rag reindex` completes the write.
        # (Unlinked after the commit, a crash in between left a deleted document's copy for reindex to revive,
        # while retrying the delete said "no such document".)
        for name in removed_files + _superseded_copies(index, settings, [a.doc_id for a in change.articles]):
            (documents_dir(settings) / name).unlink(missing_ok=True)
        index = open_store(settings).commit(index, change)
        report.commits += 1
    index = open_store(settings).compact(index)
    if serve:
        index.lexical.warm()
    report.generation = index.generation
    report.total_documents = len(index.manifest.documents)
    report.total_passages = len(index.passages)
    return index


def _superseded_copies(index: Index, settings: Settings, doc_ids: list[str]) -> list[str]:
    """Stored copies of these documents under a name the manifest no longer uses (story.html re-sent as
    story.txt): left behind, `rag reindex` would find two files for one id and could restore the old one."""
    folder = documents_dir(settings)
    if not folder.is_dir():
        return []
    out = []
    for doc_id in doc_ids:
        live = index.manifest.documents[doc_id].stored_as
        out.extend(
            p.name
            for p in folder.glob(glob.escape(doc_id) + ".*")
            if p.stem == doc_id and p.name != live and p.is_file()
        )
    return out


def commit_in_batches(
    index: Index,
    settings: Settings,
    embedder: Embedder,
    items: Iterable[Incoming | None],
    total: int,
    report: IndexReport,
    progress: ProgressFn | None = None,
    *,
    gone: Callable[[Index], list[str]] | None = None,
) -> Index:
    """Commit `items` every RAG_COMMIT_EVERY_ARTICLES articles or RAG_COMMIT_EVERY_S seconds; `gone` names the
    documents to remove, in the last commit (once every item was seen). A None item is a skipped file."""
    state = IndexProgress(articles_total=total)
    base = 0

    def embedded(n: int) -> None:
        state.passages_embedded = base + n
        if progress:
            progress(state)

    def new_batch() -> tuple[Batch, IndexReport]:
        part = IndexReport()
        return Batch(index, settings, embedder, part, embedded), part

    batch, part = new_batch()
    since, pending = time.monotonic(), 0
    for item in items:
        pending += 1
        if item is not None:
            batch.add(*item)
        if pending >= settings.commit_every_articles or time.monotonic() - since >= settings.commit_every_s:
            index, change = apply_articles(index, settings, embedder, batch, [], part)
            index = _finish(index, settings, part, [], change)
            report.absorb(part)
            state.articles_done += pending
            state.commits, base = report.commits, report.passages_embedded
            state.passages_embedded = base
            if progress:
                progress(state)
            batch, part = new_batch()
            since, pending = time.monotonic(), 0
    index, change = apply_articles(index, settings, embedder, batch, gone(index) if gone else [], part)
    index = _finish(index, settings, part, [], change)
    report.absorb(part)
    state.articles_done += pending
    state.commits, state.passages_embedded = report.commits, report.passages_embedded
    if progress:
        progress(state)
    return index


@writes_index
def index_paths(
    settings: Settings, embedder: Embedder, paths: list[Path], progress: ProgressFn | None = None
) -> tuple[Index, IndexReport]:
    """`rag index PATH...`: add new files, replace changed ones, skip unchanged ones without embedding."""
    missing = [str(p) for p in paths if not p.exists()]
    report = IndexReport(skipped=[SkippedFile(path=m, reason="no such file or directory") for m in missing])
    files = list(iter_article_paths([p for p in paths if p.exists()]))
    with IndexLock(settings.index_dir):
        index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        index = commit_in_batches(
            index, settings, embedder, read_inputs(files, settings, report), len(files), report, progress
        )
        return index, report


@writes_index
def optimize_index(settings: Settings, embedder: Embedder) -> Index:
    """`rag index --optimize`: merge every segment into one, dropping removed and replaced rows."""
    with IndexLock(settings.index_dir, timeout=30):
        index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension)
        return open_store(settings).optimize(index)


@writes_index
def add_document(
    settings: Settings, embedder: Embedder, name: str, data: bytes, doc_id: str | None = None
) -> tuple[Index, IndexReport]:
    """An upload: validated, stored, indexed. Raises instead of skipping, since the caller sent one file."""
    if len(data) > settings.max_upload_bytes:
        raise TooLargeError(
            f"{name} is {len(data)} bytes; the limit is {settings.max_upload_bytes} (RAG_MAX_UPLOAD_BYTES)"
        )
    from rag.ingest.corpus import article_from_bytes

    doc_id = validate_doc_id(doc_id or Path(name).stem)
    article = article_from_bytes(doc_id, name, data, max_bytes=settings.max_upload_bytes)
    return add_article(settings, embedder, (article, name, data), label=name)


def add_article(settings: Settings, embedder: Embedder, item: Incoming, *, label: str) -> tuple[Index, IndexReport]:
    """One document a caller sent (an upload, a URL), indexed in its own commit; raises instead of skipping."""
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        batch_report = IndexReport()
        batch = Batch(index, settings, embedder, batch_report)
        batch.add(*item)
        if batch_report.skipped:
            raise BadInputError(f"{label}: {batch_report.skipped[0].reason}")
        index, change = apply_articles(index, settings, embedder, batch, [], batch_report)
        index = _finish(index, settings, batch_report, [], change, serve=True)
        report.absorb(batch_report)
        return index, report


def commit_articles(settings: Settings, embedder: Embedder, incoming: list[Incoming], report: IndexReport) -> Index:
    """Add or replace these articles on the live index in one commit. The caller holds the IndexLock."""
    index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
    batch_report = IndexReport()
    batch = Batch(index, settings, embedder, batch_report)
    for item in incoming:
        batch.add(*item)
    index, change = apply_articles(index, settings, embedder, batch, [], batch_report)
    index = _finish(index, settings, batch_report, [], change, serve=True)
    report.absorb(batch_report)
    return index


@writes_index
def remove_documents(settings: Settings, embedder: Embedder, doc_ids: list[str]) -> tuple[Index, IndexReport]:
    for doc_id in doc_ids:
        validate_doc_id(doc_id)
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension)
        unknown = [d for d in doc_ids if d not in index.manifest.documents]
        if unknown:
            raise DocumentNotFoundError(f"no document {', '.join(unknown)} in the index (see `rag info`)")
        stored = [index.manifest.documents[d].stored_as for d in doc_ids]
        index, change = apply_articles(
            index, settings, embedder, Batch(index, settings, embedder, report), doc_ids, report
        )
        return _finish(index, settings, report, [s for s in stored if s], change, serve=True), report


@writes_index
def reindex(
    settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: ProgressFn | None = None
) -> tuple[Index, IndexReport]:
    """Rebuild from the stored raw documents (after a crash, a settings change, or with --rebuild from scratch).
    With --rebuild the first commit replaces the old index; interrupted, a plain `rag reindex` completes it."""
    if settings.store == "milvus":
        # Without local copies every document would count as gone, and the index would be emptied.
        raise BadInputError(
            "`rag reindex` rebuilds from the copies stored in RAG_INDEX_DIR/documents, which RAG_STORE=milvus does not "
            "keep: "
            "run `rag index` on the source files again (unchanged ones are skipped)"
        )
    folder = documents_dir(settings)
    files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    report = IndexReport()
    with IndexLock(settings.index_dir, timeout=30):
        if rebuild:
            index = Index.empty(
                settings.index_dir, settings, embedding_model=embedder.name, dimension=embedder.dimension
            )
            index.store.reset()  # a self-persisting store (Milvus) still holds the previous build's vectors
        else:
            index = load_live(settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        present: set[str] = set()

        def items() -> Iterable[Incoming | None]:
            for item in read_inputs(files, settings, report):
                if item is not None:
                    present.add(item[0].doc_id)
                yield item

        def gone(current: Index) -> list[str]:
            return [d for d in current.manifest.documents if d not in present]

        index = commit_in_batches(index, settings, embedder, items(), len(files), report, progress, gone=gone)
        if rebuild:
            report.added.extend(report.unchanged)
        return index, report
