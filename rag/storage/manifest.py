"""The index on disk: a small live manifest naming immutable segments, swapped in atomically, knowing how it was built.

Layout under the index directory (format 2; rag/storage/segments.py writes it):
    CURRENT              name of the live generation, replaced with os.replace
    gen-000007/          manifest.json only: the settings, every document's record, the live segments
    segments/seg-000031/ one commit's rows (passages, articles, vectors, BM25 tokens, signatures), never changed
    documents/           the raw bytes of every indexed document, stored before indexing (for `rag reindex`)
    .lock                held by the one writer
A format-1 index (every row inside its gen-NNNNNN/) still loads, and is rewritten as one segment by the next
write. A crash at any point leaves the previous generation live; leftovers are swept by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

from rag.core.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    StorageError,
    StorageFullError,
)
from rag.core.settings import Settings
from rag.core.types import Article, Passage

FORMAT_VERSION = 2  # 1: every row in the generation's folder; 2: rows in segments (rag/storage/segments.py)
READABLE_FORMATS = (1, 2)
KEEP_GENERATIONS = 2


class DocumentRecord(BaseModel):
    doc_id: str
    content_hash: str
    passages: int
    title: str | None = None
    date: str | None = None
    source: str | None = None
    stored_as: str | None = None  # file name under documents/
    indexed_at: str
    group: str | None = (
        None  # doc id of the representative of its syndicated copies (rag/text/syndication.py); None: not grouped
    )
    segment: str | None = None  # the segment holding its rows (format 2); None until committed, and in format 1


class SegmentEntry(BaseModel):
    """A live segment: its rows are those of its documents not listed in `deleted`."""

    name: str  # seg-NNNNNN under segments/
    documents: int  # documents written into it
    passages: int  # rows written into it
    deleted: list[str] = Field(default_factory=list)  # its documents removed or replaced since (tombstones)
    graph: bool = False  # an HNSW graph was saved with its vectors
    bm25: bool = False  # a bm25s model over exactly its rows was saved

    @property
    def live_documents(self) -> int:
        return self.documents - len(self.deleted)


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    generation: int = 0
    embedding_model: str
    # What computed the vectors. Manifests from before these fields were built with torch, hence the defaults.
    embedding_backend: str = "torch"
    embedding_quantization: str = "none"
    dimension: int
    normalised: bool = True
    metric: str = "inner_product"
    chunk_size: int
    chunk_overlap: int
    vector_backend: str
    vector_kind: str = "flat"
    count: int = 0
    fold_threshold: float | None = None  # the Jaccard threshold the groups were made with; None: not folded
    documents: dict[str, DocumentRecord] = Field(default_factory=dict)
    segments: list[SegmentEntry] = Field(default_factory=list)
    updated_at: str = ""

    def check_compatible(self, *, embedding_model: str, dimension: int, settings: Settings) -> None:
        """Refuse an index built differently: its vectors or passages would not mean what we think."""
        problems = []
        if self.format_version not in READABLE_FORMATS:
            problems.append(
                f"format version {self.format_version} (this build reads {', '.join(map(str, READABLE_FORMATS))})"
            )
        if self.embedding_model != embedding_model or self.dimension != dimension:
            problems.append(
                f"embedding model {self.embedding_model} ({self.dimension}-d), configured {embedding_model} "
                f"({dimension}-d)"
            )
        if (self.chunk_size, self.chunk_overlap) != (settings.chunk_size, settings.chunk_overlap):
            problems.append(
                f"chunking {self.chunk_size}/{self.chunk_overlap} words, configured "
                f"{settings.chunk_size}/{settings.chunk_overlap}"
            )
        configured = (settings.embedding_backend, settings.embedding_quantization)
        if not vectors_agree((self.embedding_backend, self.embedding_quantization), configured):
            problems.append(
                f"vectors by the {self.embedding_build} embedding build, configured {build_label(*configured)} "
                f"(set RAG_EMBEDDING_BACKEND={self.embedding_backend} "
                f"RAG_EMBEDDING_QUANTIZATION={self.embedding_quantization})"
            )
        if self.vector_backend != settings.vector_backend:
            problems.append(
                f"vector backend {self.vector_backend}, configured {settings.vector_backend} (use `rag migrate`)"
            )
        if problems:
            raise IndexMismatchError(
                "index was built differently: "
                + "; ".join(problems)
                + ". Rebuild it with `rag reindex --rebuild` or restore the settings."
            )

    @property
    def embedding_build(self) -> str:
        return build_label(self.embedding_backend, self.embedding_quantization)

    def adopt_embedding_build(self, backend: str, quantization: str, *, keeping: int) -> None:
        """Before vectors are added: an index holds one kind of vectors, so the embedder must make the vectors of
        the build that made the `keeping` documents that stay (`vectors_agree`: torch and float ONNX do), and an
        index with none left takes the embedder's build. The manifest keeps naming the build that made it."""
        if keeping and not vectors_agree(
            (backend, quantization), (self.embedding_backend, self.embedding_quantization)
        ):
            configured = build_label(backend, quantization)
            raise IndexMismatchError(
                f"index was embedded with the {self.embedding_build} backend, configured {configured}: adding to it "
                "would mix "
                f"two kinds of vectors. Set RAG_EMBEDDING_BACKEND={self.embedding_backend} "
                f"RAG_EMBEDDING_QUANTIZATION={self.embedding_quantization}, "
                "or re-embed everything with `rag reindex --rebuild`."
            )
        if not keeping:
            self.embedding_backend, self.embedding_quantization = backend, quantization


def build_label(backend: str, quantization: str) -> str:
    return backend + ("" if quantization == "none" else f" {quantization}")


def vectors_agree(built: tuple[str, str], configured: tuple[str, str]) -> bool:
    """Whether an index's vectors can be searched (and added to) with another embedding build of the same model.
    The float ONNX export is torch's model in another runtime: cosine >= 0.9999 to torch on every text
    (tests/integration/test_onnx_embedder.py) and the same SQuAD and RealTime QA ranks (bench/README.md), so a
    torch-built index is served by the default ONNX backend and the other way round. int8 weights move vectors by
    cosine 0.98-0.995 and hit@5 by up to 0.014, and the answer decision's cosines with them: an index is searched
    only by the quantisation that built it."""
    return built[1] == configured[1]


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """mkdir -p that makes a new folder's own name durable: its parent is fsynced when it was created."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    fsync_dir(path.parent)


def storage_error(exc: OSError, root: Path) -> StorageError:
    """A write's OSError as StorageError (StorageFullError for a full disk or quota), in the OS's own words,
    so the API answers 507/503 and the CLI prints one line instead of a 500 or a traceback."""
    kind = StorageFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
    where = f" ({exc.filename})" if exc.filename else ""
    return kind(f"cannot update the index at {root}: {exc.strerror or exc}{where}")


@contextlib.contextmanager
def storage_errors(root: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, root) from exc


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write via a temp file and rename, so readers see the old bytes or the new, never half. A batch of
    writes into one folder may pass sync_dir=False and fsync the folder once at the end."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written temp file (disk full) is nobody's
        raise
    if sync_dir:
        fsync_dir(path.parent)


def current_generation_dir(root: Path) -> Path | None:
    pointer = root / "CURRENT"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text().strip()
    except (OSError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
        raise IndexCorruptError(f"{pointer} does not read: {exc}") from exc
    if not name.startswith("gen-") or "/" in name:
        raise IndexCorruptError(f"{pointer} names {name!r}, not a generation")
    gen_dir = root / name
    if not gen_dir.is_dir():
        raise IndexCorruptError(f"{pointer} names {name}, which is missing; restore it or run `rag reindex`")
    return gen_dir


def read_manifest(root: Path) -> Manifest:
    gen_dir = current_generation_dir(root)
    if gen_dir is None:
        raise IndexMissingError(f"no index at {root}: build one with `rag index data/corpus`")
    return manifest_at(gen_dir)


def manifest_at(gen_dir: Path) -> Manifest:
    try:
        return Manifest.model_validate_json((gen_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or fields (ValidationError), or not UTF-8
        raise IndexCorruptError(f"manifest in {gen_dir} does not load: {exc}") from exc


def current_name(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text().strip()
    except OSError:
        return None


class IndexLock:
    """One writer at a time across processes; readers never take it."""

    def __init__(self, root: Path, timeout: float = 0.0):
        self.root = root
        with storage_errors(root):
            make_dir(root)
        self._lock = FileLock(str(root / ".lock"), timeout=timeout)

    def __enter__(self) -> IndexLock:
        try:
            self._lock.acquire()
        except Timeout as exc:
            raise IndexLockedError("another process is writing this index; try again when it finishes") from exc
        except OSError as exc:  # a read-only or full disk cannot even hold the lock file
            raise storage_error(exc, self.root) from exc
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def documents_dir(settings: Settings) -> Path:
    return settings.index_dir / "documents"


@dataclass
class ChangeSet:
    """One commit's change, in terms any store can apply: rows to add, documents to drop."""

    articles: list[Article] = field(default_factory=list)  # new or replaced documents
    passages: list[Passage] = field(default_factory=list)  # theirs, in order
    vectors: np.ndarray | None = None  # one row per passage
    tokens: list[list[str]] = field(default_factory=list)  # BM25 tokens per passage, so no store tokenises twice
    signatures: dict[str, np.ndarray] = field(default_factory=dict)  # MinHash rows this change computed
    removed: dict[str, str | None] = field(default_factory=dict)  # doc id -> where it was: removed or replaced

    @property
    def empty(self) -> bool:
        return not (self.articles or self.removed or self.signatures)
