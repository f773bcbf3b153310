"""`rag migrate --to milvus`: move the live generation's vectors into another vector store without re-embedding.
`rag migrate --store milvus|local`: move the whole index (RAG_STORE) between the local segments and Milvus.

The copy lands first; only then is the index rewritten as one segment under a manifest that names the new
backend (rag/storage/segments.py), so a crash midway leaves the old generation live and unchanged, and running the
command again starts the copy afresh.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from rag.core.errors import BadInputError, IndexCorruptError
from rag.core.settings import Settings
from rag.storage.faiss_store import build_vector_store
from rag.storage.index import Index
from rag.storage.loading import load_index
from rag.storage.manifest import IndexLock, read_manifest
from rag.storage.store import open_store

BACKENDS: tuple[str, ...] = ("faiss", "milvus")
COPY_BATCH = 2048

ProgressFn = Callable[[int, int], None]  # (vectors copied, total)


class MigrateReport(BaseModel):
    source: str
    target: str
    vectors: int = 0
    generation: int = 0
    milvus_uri: str | None = None
    milvus_collection: str | None = None

    def env(self) -> dict[str, str]:
        """The settings a user sets afterwards so every command reads the migrated index."""
        values = {"RAG_VECTOR_BACKEND": self.target}
        if self.target == "milvus":
            values["RAG_MILVUS_URI"] = self.milvus_uri or ""
            values["RAG_MILVUS_COLLECTION"] = self.milvus_collection or ""
        return values


def migrate(
    settings: Settings,
    *,
    to: str,
    uri: str | None = None,
    collection: str | None = None,
    progress: ProgressFn | None = None,
) -> MigrateReport:
    """Copy the live generation's vectors into the `to` backend and make a generation that uses it live.

    `settings` describe the index as it is (its directory, chunking, Milvus token); the source backend is read
    from the manifest, so the command works whatever RAG_VECTOR_BACKEND currently says."""
    if to not in BACKENDS:
        raise BadInputError(f"--to must be one of {', '.join(BACKENDS)}, got {to!r}")
    with IndexLock(settings.index_dir, timeout=30):
        manifest = read_manifest(settings.index_dir)
        source_settings = settings.model_copy(update={"vector_backend": manifest.vector_backend})
        target_updates: dict = {"vector_backend": to}
        if uri:
            target_updates["milvus_uri"] = uri
        if collection:
            target_updates["milvus_collection"] = collection
        target_settings = settings.model_copy(update=target_updates)
        if to == manifest.vector_backend == "faiss":
            raise BadInputError("the index already uses faiss")
        if to == manifest.vector_backend == "milvus" and _milvus_target(source_settings) == _milvus_target(
            target_settings
        ):
            raise BadInputError(
                "the index already uses this Milvus collection; pass --uri or --collection to move it elsewhere"
            )

        source = load_index(source_settings, embedding_model=manifest.embedding_model, dimension=manifest.dimension)
        return _copy(source, target_settings, progress)


def _milvus_target(settings: Settings) -> tuple[str, str]:
    from rag.storage.milvus.client import resolve_uri

    return resolve_uri(settings), settings.milvus_collection


def _copy(source: Index, target_settings: Settings, progress: ProgressFn | None) -> MigrateReport:
    dimension = source.manifest.dimension
    target = build_vector_store(target_settings, dimension, None)
    # A collection left by an earlier, interrupted run (or another index) must not leak vectors into this one.
    target.reset()
    known = {p.passage_id for p in source.passages}
    copied = 0
    for ids, vectors in source.store.iter_vectors(COPY_BATCH):
        # A self-persisting source may hold ids no generation knows (left by a crash): they stay behind.
        keep = [i for i, pid in enumerate(ids) if pid in known]
        if keep:
            target.apply(add_ids=[ids[i] for i in keep], add_vectors=vectors[keep], remove_ids=[])
        copied += len(keep)
        if progress:
            progress(copied, len(known))
    if copied != len(known) or len(target) != len(known):
        raise IndexCorruptError(
            f"copied {copied} vectors and the target holds {len(target)}, but the index has {len(known)} passages; "
            "the old generation is still live, run `rag reindex` and migrate again"
        )
    manifest = source.manifest.model_copy(deep=True)
    manifest.vector_backend = target_settings.vector_backend
    migrated = Index(source.root, manifest, source.articles, source.passages, target, source.lexical, source.signatures)
    migrated = open_store(target_settings).rewrite(migrated)
    is_milvus = target_settings.vector_backend == "milvus"
    return MigrateReport(
        source=source.manifest.vector_backend,
        target=target_settings.vector_backend,
        vectors=copied,
        generation=migrated.generation,
        milvus_uri=_milvus_target(target_settings)[0] if is_milvus else None,
        milvus_collection=target_settings.milvus_collection if is_milvus else None,
    )


STORES: tuple[str, ...] = ("local", "milvus")


class StoreMigrateReport(BaseModel):
    source: str
    target: str
    documents: int = 0
    passages: int = 0
    generation: int = 0
    milvus_uri: str | None = None

    def env(self) -> dict[str, str]:
        values = {"RAG_STORE": self.target}
        if self.target == "milvus":
            values["RAG_MILVUS_URI"] = self.milvus_uri or ""
        return values


def migrate_store(settings: Settings, *, to: str, uri: str | None = None) -> StoreMigrateReport:
    """Copy the whole index, vectors included (never re-embedded), from one store into the other.

    To Milvus: the local index is read under its writer lock and written into freshly made collections; the local
    index stays as it was (a fallback until RAG_STORE is switched). Back: the Milvus index is written as one local
    segment with FAISS vectors. Either way the copy is counted against the source before the report says done."""
    from rag.storage.milvus.client import resolve_uri
    from rag.storage.milvus.records import MilvusRecordStore, load_stored
    from rag.storage.store import SegmentStore

    if to not in STORES:
        raise BadInputError(f"--store must be one of {', '.join(STORES)}, got {to!r}")
    milvus_settings = settings.model_copy(update={"store": "milvus", **({"milvus_uri": uri} if uri else {})})
    local_settings = settings.model_copy(update={"store": "local", "vector_backend": "faiss"})
    with IndexLock(settings.index_dir, timeout=30):
        if to == "milvus":
            manifest = read_manifest(settings.index_dir)
            source_settings = local_settings.model_copy(update={"vector_backend": manifest.vector_backend})
            source = SegmentStore(source_settings).load(
                embedding_model=manifest.embedding_model, dimension=manifest.dimension
            )
            MilvusRecordStore(milvus_settings).rewrite(source)
            copied = load_stored(milvus_settings)
        else:
            source = load_stored(milvus_settings)
            source.manifest.vector_backend = "faiss"
            SegmentStore(local_settings).rewrite(source)
            copied = SegmentStore(local_settings).load(
                embedding_model=source.manifest.embedding_model, dimension=source.manifest.dimension
            )
    expected = (len(source.manifest.documents), len(source.passages))
    if (len(copied.manifest.documents), len(copied.passages)) != expected:
        raise IndexCorruptError(
            f"the copy holds {len(copied.manifest.documents)} documents and {len(copied.passages)} passages, the "
            "source "
            f"{expected[0]} and {expected[1]}; the source is unchanged, run the migration again"
        )
    return StoreMigrateReport(
        source="milvus" if to == "local" else "local",
        target=to,
        documents=expected[0],
        passages=expected[1],
        generation=copied.generation,
        milvus_uri=resolve_uri(milvus_settings) if to == "milvus" else None,
    )
