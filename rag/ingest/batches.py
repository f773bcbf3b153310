"""Articles on their way into a commit: read, sorted into new / changed / unchanged / refused, chunked and
embedded while they pile up, so `rag index` over many files can commit every RAG_COMMIT_EVERY_ARTICLES
articles or RAG_COMMIT_EVERY_S seconds (rag/ingest/indexing.py commits a batch)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from rag.core.errors import RagError, TooLargeError
from rag.core.settings import Settings
from rag.core.types import Article, Passage
from rag.ingest.corpus import article_from_bytes
from rag.models.embedding import Embedder, embedder_build
from rag.storage.index import Index
from rag.storage.manifest import vectors_agree
from rag.text.chunking import chunk_article, url_slug

EMBED_BATCH = 512  # texts per embedding step (and progress step); the embedder batches further inside
Incoming = tuple[Article, str, bytes]  # article, file name, raw bytes


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
    commits: int = 0
    total_documents: int = 0
    total_passages: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.regrouped)

    def absorb(self, batch: IndexReport) -> None:
        """Add one batch's outcome to the run's."""
        for name in ("added", "updated", "unchanged", "removed", "skipped"):
            getattr(self, name).extend(getattr(batch, name))
        self.regrouped = self.regrouped or batch.regrouped
        self.passages_embedded += batch.passages_embedded
        self.commits += batch.commits
        self.generation, self.total_documents, self.total_passages = (
            batch.generation,
            batch.total_documents,
            batch.total_passages,
        )


@dataclass
class IndexProgress:
    """Where a long `rag index` run stands, for a progress bar."""

    articles_total: int
    articles_done: int = 0  # read and committed (or found unchanged, or skipped)
    passages_embedded: int = 0
    commits: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def passages_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.passages_embedded / elapsed if elapsed > 0 else 0.0


ProgressFn = Callable[[IndexProgress], None]


def passage_text_for_embedding(passage: Passage) -> str:
    """What both retrievers index for a passage. The headline gives the first passage the context its sentences
    assume ("the council" of which story?) and the words readers ask with; BM25 reads it too, since the cleaner
    takes the headline out of the body. Without a headline, the url's slug stands in."""
    head = (passage.meta.title or url_slug(passage.meta.url)) if passage.ordinal == 0 else None
    return f"{head}. {passage.text}" if head else passage.text


def embed_passages(
    embedder: Embedder, passages: list[Passage], progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
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


@dataclass
class Fresh:
    """A new or changed article, chunked; its vectors once embedded."""

    article: Article
    passages: list[Passage]
    name: str
    data: bytes
    vectors: np.ndarray | None = None


class Batch:
    """The articles of one commit. Unchanged ones and exact copies of indexed ones are sorted out as they come;
    the rest are chunked, and embedded EMBED_BATCH passages at a time as they pile up, so a time-based commit
    can come between two steps of a long batch."""

    def __init__(
        self,
        index: Index,
        settings: Settings,
        embedder: Embedder,
        report: IndexReport,
        on_embedded: Callable[[int], None] | None = None,
    ):
        self.index, self.settings, self.embedder, self.report = index, settings, embedder, report
        self.by_hash = {rec.content_hash: rec.doc_id for rec in index.manifest.documents.values()}
        self.fresh: list[Fresh] = []
        self.on_embedded = on_embedded
        manifest = index.manifest
        # Embedding ahead is safe when the vectors will match the index's; otherwise apply_articles checks first.
        self.embed_early = not manifest.documents or vectors_agree(
            embedder_build(embedder), (manifest.embedding_backend, manifest.embedding_quantization)
        )

    def add(self, article: Article, name: str, data: bytes) -> None:
        old = self.index.manifest.documents.get(article.doc_id)
        if old is not None and old.content_hash == article.content_hash:
            self.report.unchanged.append(article.doc_id)
            return
        twin = self.by_hash.get(article.content_hash)
        if twin is not None and twin != article.doc_id:
            self.report.skipped.append(
                SkippedFile(path=name, reason=f"same content as document {twin} already indexed")
            )
            return
        passages = chunk_article(
            article, chunk_size=self.settings.chunk_size, chunk_overlap=self.settings.chunk_overlap
        )
        if not passages:
            self.report.skipped.append(SkippedFile(path=name, reason="no text left after cleaning"))
            return
        (self.report.updated if old is not None else self.report.added).append(article.doc_id)
        self.by_hash[article.content_hash] = article.doc_id
        self.fresh.append(Fresh(article, passages, name, data))
        if self.embed_early and sum(len(f.passages) for f in self.fresh if f.vectors is None) >= EMBED_BATCH:
            self.embed()

    def embed(self) -> None:
        """Embed every article not embedded yet."""
        pending = [f for f in self.fresh if f.vectors is None]
        passages = [p for f in pending for p in f.passages]
        done = self.report.passages_embedded
        step = (lambda n, _total: self.on_embedded(done + n)) if self.on_embedded else None
        vectors = embed_passages(self.embedder, passages, step)
        self.report.passages_embedded += len(passages)
        start = 0
        for item in pending:
            item.vectors = vectors[start : start + len(item.passages)]
            start += len(item.passages)


def read_inputs(paths: list[Path], settings: Settings, report: IndexReport) -> Iterator[Incoming | None]:
    """Each file as an article, read when its turn comes; None for a file skipped (its reason in `report`)."""
    seen: set[str] = set()
    for path in paths:
        try:
            size = path.stat().st_size
            if size > settings.max_upload_bytes:  # refused before reading: a huge file never reaches memory
                raise TooLargeError(
                    f"{path.name}: {size} bytes exceeds the limit of {settings.max_upload_bytes} bytes "
                    "(RAG_MAX_UPLOAD_BYTES)"
                )
            data = path.read_bytes()
            article = article_from_bytes(path.stem, path.name, data, max_bytes=settings.max_upload_bytes)
        except (OSError, RagError) as exc:
            report.skipped.append(
                SkippedFile(
                    path=str(path),
                    reason=str(exc) if isinstance(exc, RagError) else f"unreadable: {exc.strerror or exc}",
                )
            )
            yield None
            continue
        if article.doc_id in seen:
            report.skipped.append(
                SkippedFile(path=str(path), reason=f"another file in this batch already has id {article.doc_id}")
            )
            yield None
            continue
        seen.add(article.doc_id)
        yield article, path.name, data
