"""The index on disk: numbered generations, swapped in atomically, each knowing how it was built.

Layout under the index directory:
    CURRENT              name of the live generation, replaced with os.replace
    gen-000007/          manifest.json, articles.jsonl, passages.jsonl, vectors, bm25
    documents/           the raw bytes of every indexed document, stored before indexing (for `rag reindex`)
    .lock                held by the one writer
A writer builds a whole new generation in a temp dir, fsyncs it, renames it, then flips CURRENT. A crash
at any point leaves the previous generation live; leftovers are swept by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field, ValidationError

from rag.dedup import Signatures
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError, StorageError, StorageFullError
from rag.lexical import LexicalIndex
from rag.settings import Settings
from rag.types import Article, Passage
from rag.vectorstore import VectorStore, build_vector_store

FORMAT_VERSION = 1
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
    group: str | None = None  # doc id of the representative of its syndicated copies (rag/dedup.py); None: not grouped


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
    updated_at: str = ""

    def check_compatible(self, *, embedding_model: str, dimension: int, settings: Settings) -> None:
        """Refuse an index built differently: its vectors or passages would not mean what we think."""
        problems = []
        if self.format_version != FORMAT_VERSION:
            problems.append(f"format version {self.format_version} (this build reads {FORMAT_VERSION})")
        if self.embedding_model != embedding_model or self.dimension != dimension:
            problems.append(f"embedding model {self.embedding_model} ({self.dimension}-d), configured {embedding_model} ({dimension}-d)")
        if (self.chunk_size, self.chunk_overlap) != (settings.chunk_size, settings.chunk_overlap):
            problems.append(f"chunking {self.chunk_size}/{self.chunk_overlap} words, configured {settings.chunk_size}/{settings.chunk_overlap}")
        if self.vector_backend != settings.vector_backend:
            problems.append(f"vector backend {self.vector_backend}, configured {settings.vector_backend} (use `rag migrate`)")
        if problems:
            raise IndexMismatchError(
                "index was built differently: " + "; ".join(problems) + ". Rebuild it with `rag reindex --rebuild` or restore the settings."
            )

    @property
    def embedding_build(self) -> str:
        return self.embedding_backend + ("" if self.embedding_quantization == "none" else f" {self.embedding_quantization}")

    def adopt_embedding_build(self, backend: str, quantization: str, *, keeping: int) -> None:
        """Before vectors are added: an index holds one build's vectors, so the embedder must be the one that
        built the `keeping` documents that stay, and an index with none left takes the embedder's build.
        Searching with another backend is allowed (the same model's vectors agree to cosine ~0.99-1.0; `rag
        info` warns); adding would mix them under a manifest that names only one."""
        if keeping and (backend, quantization) != (self.embedding_backend, self.embedding_quantization):
            configured = backend + ("" if quantization == "none" else f" {quantization}")
            raise IndexMismatchError(
                f"index was embedded with the {self.embedding_build} backend, configured {configured}: adding to it would mix "
                f"two kinds of vectors. Set RAG_EMBEDDING_BACKEND={self.embedding_backend} RAG_EMBEDDING_QUANTIZATION={self.embedding_quantization}, "
                "or re-embed everything with `rag reindex --rebuild`."
            )
        self.embedding_backend, self.embedding_quantization = backend, quantization


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
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
    _fsync_dir(path.parent)


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
        _fsync_dir(path.parent)


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.model_dump_json() + "\n")


def _read_jsonl(path: Path, model: type[BaseModel]) -> list:
    with path.open(encoding="utf-8") as fh:
        return [model.model_validate_json(line) for line in fh if line.strip()]


class Index:
    """One loaded generation: passages, articles, vectors and BM25, read-only once built."""

    def __init__(
        self, root: Path, manifest: Manifest, articles: dict[str, Article], passages: list[Passage], store: VectorStore, lexical: LexicalIndex,
        signatures: Signatures | None = None,
    ):
        self.root = root
        self.manifest = manifest
        self.articles = articles
        self.passages = passages
        self.passage_by_id = {p.passage_id: p for p in passages}
        self.store = store
        self.lexical = lexical
        self.signatures = signatures or Signatures()

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def generation(self) -> int:
        return self.manifest.generation

    def passages_of(self, doc_id: str) -> list[Passage]:
        return [p for p in self.passages if p.doc_id == doc_id]

    @classmethod
    def empty(cls, root: Path, settings: Settings, *, embedding_model: str, dimension: int) -> Index:
        manifest = Manifest(
            embedding_model=embedding_model,
            dimension=dimension,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            vector_backend=settings.vector_backend,
        )
        return cls(root, manifest, {}, [], build_vector_store(settings, dimension, None), LexicalIndex())


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
    return _manifest_at(gen_dir)


def _manifest_at(gen_dir: Path) -> Manifest:
    try:
        return Manifest.model_validate_json((gen_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or fields (ValidationError), or not UTF-8
        raise IndexCorruptError(f"manifest in {gen_dir} does not load: {exc}") from exc


def _current_name(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text().strip()
    except OSError:
        return None


LOAD_ATTEMPTS = 3


def load_index(settings: Settings, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
    """Load the live generation, checking it was built the way settings say."""
    # Two commits during one slow load prune the generation being read; that is a moved target, not
    # corruption, so read the new live generation instead of failing.
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        seen = _current_name(settings.index_dir)
        try:
            return _load_live(settings, embedding_model=embedding_model, dimension=dimension, missing_ok=missing_ok)
        except IndexCorruptError:
            if attempt == LOAD_ATTEMPTS or _current_name(settings.index_dir) == seen:
                raise
    raise AssertionError("unreachable")


def _load_live(settings: Settings, *, embedding_model: str, dimension: int, missing_ok: bool) -> Index:
    root = settings.index_dir
    gen_dir = current_generation_dir(root) if root.is_dir() else None
    if gen_dir is None:
        if missing_ok:
            return Index.empty(root, settings, embedding_model=embedding_model, dimension=dimension)
        raise IndexMissingError(f"no index at {root}: build one with `rag index data/corpus`")
    manifest = _manifest_at(gen_dir)  # not read_manifest(root): CURRENT may have moved on since gen_dir was read
    manifest.check_compatible(embedding_model=embedding_model, dimension=dimension, settings=settings)
    try:
        articles = {a.doc_id: a for a in _read_jsonl(gen_dir / "articles.jsonl", Article)}
        passages = _read_jsonl(gen_dir / "passages.jsonl", Passage)
        lexical = LexicalIndex.load(gen_dir)
        signatures = Signatures.load(gen_dir)
    except (OSError, ValidationError, ValueError) as exc:
        raise IndexCorruptError(f"index files in {gen_dir} do not load: {exc}") from exc
    store = build_vector_store(settings, dimension, gen_dir)
    if len(passages) != manifest.count or len(lexical) != len(passages):
        raise IndexCorruptError(f"index in {gen_dir} is inconsistent: {len(passages)} passages, manifest says {manifest.count}")
    if settings.vector_backend == "faiss" and len(store) != len(passages):
        raise IndexCorruptError(f"index in {gen_dir} has {len(store)} vectors for {len(passages)} passages")
    return Index(root, manifest, articles, passages, store, lexical, signatures)


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


def commit_generation(index: Index, settings: Settings) -> Index:
    """Write `index` as the next generation and make it live. Caller holds the IndexLock."""
    root = settings.index_dir
    with storage_errors(root):
        make_dir(root)
    sweep_leftovers(root)
    previous = current_generation_dir(root)
    number = (int(previous.name.split("-")[1]) if previous else 0) + 1
    index.manifest.generation = number
    index.manifest.count = len(index.passages)
    index.manifest.updated_at = _now()
    index.manifest.vector_kind = getattr(index.store, "kind", settings.vector_backend)
    tmp = root / f"tmp-{number:06d}-{os.getpid()}-{int(time.time() * 1000)}"
    final = root / f"gen-{number:06d}"
    with storage_errors(root):
        try:
            tmp.mkdir()
            _write_generation(index, tmp)
            if final.exists():
                # Left by a writer killed between this rename and the CURRENT flip: never live, and os.replace
                # cannot rename over a non-empty directory, so without this every later write would fail.
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(root)  # the new name gen-NNNNNN is durable before CURRENT points at it
            write_atomic(root / "CURRENT", final.name.encode())
        except OSError:
            # A failed write (disk full, permission denied) leaves nothing behind but the live generation.
            shutil.rmtree(tmp, ignore_errors=True)
            if _current_name(root) != final.name:
                shutil.rmtree(final, ignore_errors=True)
            raise
    with contextlib.suppress(OSError):  # housekeeping: the write itself is committed
        _prune_generations(root, keep=KEEP_GENERATIONS)
    index.root = root
    return index


def _write_generation(index: Index, tmp: Path) -> None:
    """Every file of a generation into `tmp`, each file and then each folder fsynced: after a power cut the
    renamed folder must hold its entries, not just its name."""
    _write_jsonl(tmp / "articles.jsonl", index.articles.values())
    _write_jsonl(tmp / "passages.jsonl", index.passages)
    index.store.save(tmp)
    index.lexical.save(tmp)
    index.signatures.save(tmp)
    (tmp / "manifest.json").write_text(index.manifest.model_dump_json(indent=2))
    folders = [tmp]
    for path in tmp.rglob("*"):
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # deepest first, tmp last
        _fsync_dir(folder)


def sweep_leftovers(root: Path) -> None:
    """Remove temp dirs of writers that died; only called under the lock."""
    for path in root.glob("tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".*.tmp*"):
        path.unlink(missing_ok=True)
    docs = root / "documents"
    if docs.is_dir():
        for path in docs.glob(".*.tmp*"):
            path.unlink(missing_ok=True)


def _prune_generations(root: Path, keep: int) -> None:
    live = (root / "CURRENT").read_text().strip()
    gens = sorted(p for p in root.glob("gen-*") if p.is_dir())
    for path in gens[:-keep]:
        if path.name != live:
            shutil.rmtree(path, ignore_errors=True)


def documents_dir(settings: Settings) -> Path:
    return settings.index_dir / "documents"


def json_dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)
