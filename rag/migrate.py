"""`rag migrate --to milvus`: move the live generation's vectors into another vector store without re-embedding.

The copy lands first; only then is the index rewritten as one segment under a manifest that names the new
backend (rag/segments.py), so a crash midway leaves the old generation live and unchanged, and running the
command again starts the copy afresh.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from rag.errors import BadInputError, IndexCorruptError
from rag.index import Index, IndexLock, load_index, read_manifest
from rag.settings import Settings
from rag.store import open_store
from rag.vectorstore import build_vector_store

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
        if to == manifest.vector_backend == "milvus" and _milvus_target(source_settings) == _milvus_target(target_settings):
            raise BadInputError("the index already uses this Milvus collection; pass --uri or --collection to move it elsewhere")

        source = load_index(source_settings, embedding_model=manifest.embedding_model, dimension=manifest.dimension)
        return _copy(source, target_settings, progress)


def _milvus_target(settings: Settings) -> tuple[str, str]:
    from rag.milvus_store import resolve_uri

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
