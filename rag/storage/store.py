"""The one boundary between indexing and where an index's records live.

Indexing (rag/ingest/indexing.py) decides what changes: documents added or replaced (their articles, passages,
vectors, BM25 tokens, MinHash signatures) and documents removed. It hands that to a store as a ChangeSet
together with the in-memory Index that already shows it (the document table with its syndication groups,
which a change can alter for documents it does not touch). The store makes the change durable and live in
one step, or not at all.

The local store keeps immutable segments under a small live manifest (rag/storage/segments.py). With `RAG_STORE=milvus`
the same records live in Milvus collections (rag/storage/milvus/records.py), so `rag serve` replicas hold no index state
of their own. (RAG_VECTOR_BACKEND=milvus keeps only the vectors in Milvus and the rest in local segments.)
"""

from __future__ import annotations

from typing import Protocol

from rag.core.settings import Settings
from rag.storage import segments
from rag.storage.index import Index
from rag.storage.loading import load_index
from rag.storage.manifest import ChangeSet


class IndexStore(Protocol):
    """Where an index lives. Writers hold rag.storage.index.IndexLock around every call but load; that lock is local to
    one machine, so a store shared by machines (Milvus) must make every write safe without it (idempotent)."""

    def load(self, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
        """A consistent snapshot of the live index."""

    def commit(self, index: Index, change: ChangeSet) -> Index:
        """Make `change` (already applied to `index` in memory) durable and live, atomically."""

    def rewrite(self, index: Index) -> Index:
        """Store the whole of `index` afresh (a migration, an old format)."""

    def compact(self, index: Index) -> Index:
        """Housekeeping after a commit (merging small segments); the content stays the same."""

    def optimize(self, index: Index) -> Index:
        """Make the index as compact and fast to load as it can be (`rag index --optimize`)."""

    def is_stale(self, index: Index) -> bool:
        """Another process committed since `index` was loaded, and a server must follow it. Cheap enough to ask
        on every request."""

    def refresh(self, index: Index) -> Index | None:
        """A newer snapshot when `index` is stale, else None."""


class SegmentStore:
    """The local store: rag/storage/segments.py under the index directory."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def load(self, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
        return load_index(self.settings, embedding_model=embedding_model, dimension=dimension, missing_ok=missing_ok)

    def commit(self, index: Index, change: ChangeSet) -> Index:
        return segments.commit(index, self.settings, change)

    def rewrite(self, index: Index) -> Index:
        return segments.rewrite(index, self.settings)

    def compact(self, index: Index) -> Index:
        return segments.compact(index, self.settings)

    def optimize(self, index: Index) -> Index:
        return segments.optimize(index, self.settings)

    def is_stale(self, index: Index) -> bool:
        # One machine, and the server is the writer of its index: it swaps in what it commits (api/routes/documents.py).
        return False

    def refresh(self, index: Index) -> Index | None:
        return None


def open_store(settings: Settings) -> IndexStore:
    if settings.store == "milvus":
        from rag.storage.milvus.records import MilvusRecordStore  # pymilvus loads only when Milvus holds the index

        return MilvusRecordStore(settings)
    return SegmentStore(settings)


def load_live(settings: Settings, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
    """The live index from wherever RAG_STORE says it is."""
    return open_store(settings).load(embedding_model=embedding_model, dimension=dimension, missing_ok=missing_ok)
