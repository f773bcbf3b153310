"""Searching the records in Milvus (rag/storage/milvus/records.py): dense and BM25 over one passages collection.

Both stand where the local index has its FAISS store and bm25s model, so the retriever's fusion
(rag/search/retriever.py)
does not know which it reads. Rows are written only by MilvusRecordStore.commit; the `apply` of a loaded index
changes what it holds in memory and nothing in Milvus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import VectorStoreError
from rag.storage.bm25 import LexicalIndex
from rag.storage.milvus.client import FILTER_CHUNK, MAX_TOPK, OVERFETCH
from rag.text.tokens import tokenize

if TYPE_CHECKING:
    from rag.storage.milvus.collections import MilvusRecords

CALL_TIMEOUT_S = 10.0  # per Milvus call: an unreachable server is a 503 within this, not a hung request


def call_milvus(uri: str, fn, *args, **kwargs):
    """Run one client call; whatever Milvus or the network raises is a VectorStoreError naming the server."""
    import grpc  # pymilvus's transport: a server gone mid-call can surface as grpc's error, not a MilvusException
    from pymilvus import MilvusException

    try:
        return fn(*args, **kwargs)
    except MilvusException as exc:
        raise VectorStoreError(f"Milvus at {uri} failed: {exc.message}") from exc
    except (grpc.RpcError, ConnectionError, TimeoutError) as exc:
        raise VectorStoreError(f"Milvus at {uri} cannot be reached: {exc}") from exc


def in_expr(field: str, ids: list[str]) -> str:
    # JSON string literals are valid Milvus string literals, quotes and backslashes escaped.
    return f"{field} in {json.dumps(ids, ensure_ascii=False)}"


def filtered_search(run, k: int, allow: set[str] | None) -> list[tuple[str, float]]:
    """`run(limit, expr)` -> hits best first. A wide allow set is first tried as a post-filter over an over-fetched
    unfiltered search (its allowed prefix is the filtered ranking), else searched chunk by chunk and merged."""
    if k <= 0:
        return []
    if allow is None:
        return run(min(k, MAX_TOPK), "")
    ids = sorted(allow)
    if not ids:
        return []
    if len(ids) <= FILTER_CHUNK:
        return run(min(k, len(ids)), in_expr("passage_id", ids))
    hits = [h for h in run(min(k * OVERFETCH, MAX_TOPK), "") if h[0] in allow]
    if len(hits) >= k:
        return hits[:k]
    merged: list[tuple[str, float]] = []
    for start in range(0, len(ids), FILTER_CHUNK):
        chunk = ids[start : start + FILTER_CHUNK]
        merged.extend(run(min(k, len(chunk)), in_expr("passage_id", chunk)))
    return sorted(merged, key=lambda h: (-h[1], h[0]))[:k]


class RecordVectors:
    """Inner-product search over the passages collection's vectors (VectorStore)."""

    kind = "milvus"

    def __init__(self, records: MilvusRecords):
        self.records = records
        self.stamp: str | None = None  # the store's state this index shows (MilvusRecords.stamp)
        self.groups: dict[str, str | None] = {}  # syndication groups as stored, so a commit rewrites only changed ones

    def __len__(self) -> int:
        rows = self.records.call(
            self.records.client.query,
            self.records.passages,
            filter="",
            output_fields=["count(*)"],
            timeout=CALL_TIMEOUT_S,
        )
        return int(rows[0]["count(*)"])

    def apply(self, *, add_ids: list[str], add_vectors: np.ndarray, remove_ids: Iterable[str]) -> None:
        """Nothing to do in memory: the vectors reach Milvus with their passages when the change is committed."""

    def search(self, query: np.ndarray, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()

        def run(limit: int, expr: str) -> list[tuple[str, float]]:
            hits = self.records.call(
                self.records.client.search,
                self.records.passages,
                data=[vector],
                limit=limit,
                filter=expr,
                anns_field="vector",
                search_params={"metric_type": "IP"},
                output_fields=["passage_id"],
                timeout=CALL_TIMEOUT_S,
            )
            return [(hit["entity"]["passage_id"], float(hit["distance"])) for hit in hits[0]]

        return filtered_search(run, k, allow)

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
        rows: list[dict] = []
        for row in self.records.scan(self.records.passages, ["passage_id", "vector"]):
            rows.append(row)
            if len(rows) == batch:
                yield self._as_arrays(rows)
                rows = []
        if rows:
            yield self._as_arrays(rows)

    def _as_arrays(self, rows: list[dict]) -> tuple[list[str], np.ndarray]:
        return [r["passage_id"] for r in rows], np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(
            len(rows), self.records.dimension
        )

    def save(self, directory: Path) -> None:
        """Nothing to write: the rows are in Milvus."""

    def reset(self) -> None:
        self.records.drop()


class RecordLexical(LexicalIndex):
    """BM25 by Milvus over the passages' tokens; the token lists stay in memory for idf (evidence, decision)."""

    records: MilvusRecords | None = None  # set when the store attaches the index (MilvusRecordStore._attach)

    def search(self, query: str, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        terms = bm25_terms(tokenize(query))
        if not self.ids or not terms or k <= 0:
            return []
        records = self.records
        assert records is not None, "a RecordLexical is searched only once attached to its store"
        known = set(self.ids)

        def run(limit: int, expr: str) -> list[tuple[str, float]]:
            hits = records.call(
                records.client.search,
                records.passages,
                data=[terms],
                limit=limit,
                filter=expr,
                anns_field="sparse",
                search_params={"metric_type": "BM25"},
                output_fields=["passage_id"],
                timeout=CALL_TIMEOUT_S,
            )
            # Milvus Lite reports a BM25 score as a negative distance, a server as a positive score: best first either
            # way.
            return [(hit["entity"]["passage_id"], abs(float(hit["distance"]))) for hit in hits[0]]

        # Rows of a write in flight or a killed writer may rank too; only this view's passages are answers.
        return [h for h in filtered_search(run, k, allow) if h[0] in known]

    def warm(self) -> None:
        """Nothing to build: Milvus keeps the BM25 index."""

    def save_model(self, directory: Path) -> None:
        """Nothing to save: Milvus keeps the BM25 index."""


def bm25_terms(tokens: list[str]) -> str:
    """Our tokens as text Milvus's "standard" analyser keeps whole (its only other tokenizer is Chinese): it would
    split "nato-ukraine" and "5.1", which rag/storage/bm25.py already split where that helps, so the ranking is the
    same BM25 over the same terms as the local index."""
    return " ".join(re.sub(r"\W", "_", t) for t in tokens)
