"""The Milvus connection and its two collections (passages, articles): created with their schemas and
indexes, loaded, read in batches; every call's failure is a VectorStoreError (HTTP 503)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rag.core.errors import IndexMissingError, VectorStoreError
from rag.core.settings import Settings
from rag.storage.milvus.client import CONNECT_TIMEOUT_S, WRITE_BATCH, is_lite_uri, resolve_uri
from rag.storage.milvus.rows import LIVE_KEY, MAX_VARCHAR
from rag.storage.milvus.search import CALL_TIMEOUT_S, call_milvus

if TYPE_CHECKING:
    pass


READ_BATCH = 2000


RELEASED = re.compile(r"state 'released'|not loaded|call load\(\)", re.I)  # how Milvus says a collection is not loaded


class MilvusRecords:
    """The connection and the two collections; every call's failure becomes a VectorStoreError (HTTP 503)."""

    def __init__(self, settings: Settings, dimension: int | None):
        """`dimension` None: only open collections that exist (a reader that learns the dimension from them)."""
        from pymilvus import MilvusClient, MilvusException

        self.uri = resolve_uri(settings)
        self.dimension = dimension
        self.passages = f"{settings.milvus_store_prefix}_passages"
        self.articles = f"{settings.milvus_store_prefix}_articles"
        if is_lite_uri(self.uri):
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)
            # Lite hands out no session timestamp for a scan, so the client uses its clock: the scan still sees
            # every write acknowledged before it. The warning about it on every load says nothing to act on.
            logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        try:
            self.client = MilvusClient(uri=self.uri, token=token, timeout=CONNECT_TIMEOUT_S)
        except MilvusException as exc:
            hint = (
                " (is another process using this Milvus Lite file? run a Milvus server to share it)"
                if is_lite_uri(self.uri)
                else ""
            )
            raise VectorStoreError(f"cannot reach Milvus at {self.uri}: {exc.message}{hint}") from exc
        self.call(self._open)

    def call(self, fn, *args, **kwargs):
        try:
            return call_milvus(self.uri, fn, *args, **kwargs)
        except VectorStoreError as exc:
            # A restarted server holds every collection released until someone loads it: load, and try once more.
            if not RELEASED.search(str(exc)):
                raise
            call_milvus(self.uri, self._load)
            return call_milvus(self.uri, fn, *args, **kwargs)

    def _open(self) -> None:
        for name, create in ((self.passages, self._create_passages), (self.articles, self._create_articles)):
            if not self.client.has_collection(name):
                if self.dimension is None:
                    raise IndexMissingError(f"no index in Milvus at {self.uri}: collection {name} does not exist")
                create()
        self._load()

    def _load(self) -> None:
        for name in (self.passages, self.articles):
            self.client.load_collection(name)  # a no-op once loaded

    def _create_passages(self) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("passage_id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=128)
        schema.add_field("ordinal", DataType.INT64)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("tokens", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_function(
            Function(
                name="terms_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
        # k1 and b as bm25s uses them locally, so the two stores rank keyword matches alike.
        index.add_index(
            field_name="sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.5, "bm25_b": 0.75},
        )
        # Strong: a replica's search right after another's upload must see it.
        self.client.create_collection(self.passages, schema=schema, index_params=index, consistency_level="Strong")

    def _create_articles(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
        schema.add_field("piece", DataType.INT64)
        schema.add_field("body", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("record", DataType.VARCHAR, max_length=MAX_VARCHAR)
        # Milvus refuses a collection without a vector field; this one is never searched.
        schema.add_field("unused_vector", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index(field_name="unused_vector", index_type="AUTOINDEX", metric_type="L2")
        self.client.create_collection(self.articles, schema=schema, index_params=index, consistency_level="Strong")

    def drop(self) -> None:
        """Both collections gone and made again, empty: `rag migrate --store milvus` starts from nothing."""

        def recreate() -> None:
            for name in (self.passages, self.articles):
                if self.client.has_collection(name):
                    self.client.drop_collection(name)
            self._open()

        self.call(recreate)

    def live_row(self) -> dict | None:
        rows = self.call(
            self.client.query, self.articles, ids=[LIVE_KEY], output_fields=["record"], timeout=CALL_TIMEOUT_S
        )
        return json.loads(rows[0]["record"]) if rows else None

    def stamp(self) -> str | None:
        """What identifies the index's current state: it changes with every commit of any replica."""
        row = self.live_row()
        return row["stamp"] if row else None

    def scan(self, collection: str, fields: list[str]) -> Iterator[dict]:
        iterator = self.call(self.client.query_iterator, collection, batch_size=READ_BATCH, output_fields=fields)
        try:
            while rows := self.call(iterator.next):
                yield from rows
        finally:
            iterator.close()

    def upsert(self, collection: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), WRITE_BATCH):
            self.call(self.client.upsert, collection, rows[start : start + WRITE_BATCH], timeout=CALL_TIMEOUT_S)

    def delete(self, collection: str, expr: str) -> None:
        self.call(self.client.delete, collection, filter=expr, timeout=CALL_TIMEOUT_S)
