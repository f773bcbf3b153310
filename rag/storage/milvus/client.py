"""Milvus behind `VectorStore`: the same pymilvus client talks to Milvus Lite (a `.db` path) or a cluster (a URL).

The engine persists itself, so this store lives outside the index generations: a generation names the passages it
holds and the retriever ignores any other id the collection may still have (a crash between the upsert and the
generation flip leaves such ids; re-running the command upserts and deletes again, which is idempotent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.core.errors import IndexMismatchError, VectorStoreError

if TYPE_CHECKING:
    from rag.core.settings import Settings

ID_FIELD = "passage_id"
VECTOR_FIELD = "vector"
MAX_ID_LENGTH = 512
WRITE_BATCH = 1000  # rows per upsert/delete: a 384-d batch is ~1.5 MB, well under gRPC's message limit
FILTER_CHUNK = 1000  # ids per `passage_id in [...]` expression; longer ones cost more to parse than to repeat
MAX_TOPK = 16384  # Milvus refuses a larger limit
OVERFETCH = 10  # a wide allow set is first tried as a post-filter over k*OVERFETCH unfiltered hits
CONNECT_TIMEOUT_S = 10.0
NETWORK_SCHEMES = ("http://", "https://", "tcp://", "unix:")


def is_lite_uri(uri: str) -> bool:
    """A file path (Milvus Lite, in process) rather than a server address."""
    return not uri.lower().startswith(NETWORK_SCHEMES)


def resolve_uri(settings: Settings) -> str:
    """The configured URI; left at its default, Lite's file goes inside the index directory, so two indexes
    (say the eval index and the main one) never share a collection by accident."""
    from rag.core.settings import Settings as _Settings

    uri = settings.milvus_uri
    if uri == _Settings.model_fields["milvus_uri"].default:
        return str(Path(settings.index_dir) / "milvus.db")
    return uri


def _in_expr(ids: list[str]) -> str:
    # JSON string literals are valid Milvus string literals, quotes and backslashes escaped.
    return f"{ID_FIELD} in {json.dumps(ids, ensure_ascii=False)}"


def _hit_id(hit: dict) -> str:
    # pymilvus names the key after the primary field; older servers put it only under "entity" or "id".
    entity = hit.get("entity") or {}
    return entity.get(ID_FIELD) or hit.get(ID_FIELD) or hit["id"]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MilvusStore:
    """Inner-product search in one Milvus collection, primary key = passage id."""

    kind = "milvus"

    def __init__(self, client: Any, collection: str, dimension: int, *, uri: str, index_type: str = "AUTOINDEX"):
        self._client = client
        self.collection = collection
        self.dimension = dimension
        self.uri = uri
        self.index_type = index_type
        self._mismatch: str | None = None
        self._call(self._open)

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int, *, index_type: str = "AUTOINDEX") -> MilvusStore:
        """Connect to RAG_MILVUS_URI and open (or create) RAG_MILVUS_COLLECTION.

        AUTOINDEX lets the engine choose (HNSW on a cluster, and in Lite when faiss is present); FLAT is exact."""
        uri = resolve_uri(settings)
        if is_lite_uri(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            # It logs a traceback when the file is locked; the error below says what to do instead.
            logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        try:
            from pymilvus import MilvusClient, MilvusException
        except ImportError as exc:  # pragma: no cover - a pinned dependency
            raise VectorStoreError(
                "pymilvus is not installed: `pip install pymilvus milvus-lite` (make install does)"
            ) from exc
        try:
            client = MilvusClient(uri=uri, token=token, timeout=CONNECT_TIMEOUT_S)
        except MilvusException as exc:
            hint = (
                " (is another process using this Milvus Lite file? run Milvus standalone to share it)"
                if is_lite_uri(uri)
                else ""
            )
            raise VectorStoreError(f"cannot open Milvus at {uri}: {exc.message}{hint}") from exc
        return cls(client, settings.milvus_collection, dimension, uri=uri, index_type=index_type)

    # --- collection lifecycle -------------------------------------------------------------------------------
    def _open(self) -> None:
        if not self._client.has_collection(self.collection):
            self._create()
            return
        fields = self._client.describe_collection(self.collection)["fields"]
        dims = [int(f["params"].get("dim", 0)) for f in fields if f["name"] == VECTOR_FIELD]
        if dims != [self.dimension]:
            # Not raised here: `rag reindex --rebuild` opens the store and then resets it to the new dimension.
            self._mismatch = (
                f"Milvus collection {self.collection} at {self.uri} holds {dims[0] if dims else 'no'}-d vectors, "
                f"the embedder makes {self.dimension}-d; set RAG_MILVUS_COLLECTION to another name or run `rag reindex "
                "--rebuild`"
            )
            return
        self._client.load_collection(self.collection)  # a cluster may have released it; a no-op when loaded

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension)
        index = self._client.prepare_index_params()
        index.add_index(field_name=VECTOR_FIELD, index_type=self.index_type, metric_type="IP")
        # Strong: a search right after an index command must see what that command wrote.
        self._client.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")
        self._mismatch = None

    def reset(self) -> None:
        """Drop every vector (and a collection of the wrong dimension): a rebuild starts from nothing."""

        def drop_and_create() -> None:
            if self._client.has_collection(self.collection):
                self._client.drop_collection(self.collection)
            self._create()

        self._call(drop_and_create)

    def _call(self, fn, *args, **kwargs):
        from pymilvus import MilvusException

        try:
            return fn(*args, **kwargs)
        except MilvusException as exc:
            raise VectorStoreError(f"Milvus at {self.uri} failed: {exc.message}") from exc

    def _check(self) -> None:
        if self._mismatch:
            raise IndexMismatchError(self._mismatch)

    def close(self) -> None:
        self._client.close()

    # --- VectorStore ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._mismatch:
            return 0
        rows = self._call(self._client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def apply(self, *, add_ids: list[str], add_vectors: np.ndarray, remove_ids: Iterable[str]) -> None:
        self._check()
        add_vectors = np.asarray(add_vectors, dtype=np.float32).reshape(-1, self.dimension)
        if len(add_ids) != len(add_vectors):
            raise ValueError("ids and vectors differ in length")
        # Upsert replaces an existing id, so only ids that are not re-added need deleting.
        doomed = sorted(set(remove_ids) - set(add_ids))
        for chunk in _batches(doomed, WRITE_BATCH):
            self._call(self._client.delete, self.collection, ids=chunk)
        for start in range(0, len(add_ids), WRITE_BATCH):
            rows = [
                {ID_FIELD: pid, VECTOR_FIELD: vec.tolist()}
                for pid, vec in zip(add_ids[start : start + WRITE_BATCH], add_vectors[start : start + WRITE_BATCH])
            ]
            self._call(self._client.upsert, self.collection, rows)

    def _search(self, query: np.ndarray, k: int, expr: str) -> list[tuple[str, float]]:
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        hits = self._call(
            self._client.search,
            self.collection,
            data=[vector],
            limit=min(k, MAX_TOPK),
            filter=expr,
            anns_field=VECTOR_FIELD,
            search_params={"metric_type": "IP"},
            output_fields=[ID_FIELD],
        )
        return [(_hit_id(hit), float(hit["distance"])) for hit in hits[0]]

    def search(self, query: np.ndarray, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        self._check()
        if k <= 0:
            return []
        if allow is None:
            return self._search(query, k, "")
        ids = sorted(allow)
        if not ids:
            return []
        if len(ids) <= FILTER_CHUNK:
            return self._search(query, min(k, len(ids)), _in_expr(ids))
        # A wide allow set (a long date range): the allowed prefix of an unfiltered ranking is the filtered ranking,
        # so one over-fetched search usually answers; otherwise search each chunk of ids and merge.
        hits = [h for h in self._search(query, k * OVERFETCH, "") if h[0] in allow]
        if len(hits) >= k:
            return hits[:k]
        merged: list[tuple[str, float]] = []
        for chunk in _batches(ids, FILTER_CHUNK):
            merged.extend(self._search(query, min(k, len(chunk)), _in_expr(chunk)))
        return sorted(merged, key=lambda h: (-h[1], h[0]))[:k]

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
        self._check()
        iterator = self._call(
            self._client.query_iterator, self.collection, batch_size=batch, output_fields=[ID_FIELD, VECTOR_FIELD]
        )
        try:
            while True:
                rows = self._call(iterator.next)
                if not rows:
                    return
                ids = [row[ID_FIELD] for row in rows]
                yield (
                    ids,
                    np.asarray([row[VECTOR_FIELD] for row in rows], dtype=np.float32).reshape(len(ids), self.dimension),
                )
        finally:
            iterator.close()

    def save(self, directory: Path) -> None:
        """Nothing to write: Milvus persists every upsert and delete itself."""
