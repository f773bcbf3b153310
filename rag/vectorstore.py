"""Vector stores keyed by passage id. FAISS on disk is the default; other engines plug in behind `VectorStore`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.errors import IndexCorruptError

if TYPE_CHECKING:
    from rag.settings import Settings

# A date filter that allows few rows is searched exactly over those rows. HNSW with a selector still walks the
# whole graph and keeps only allowed nodes, so with 0.5% of 20k rows allowed k=50 found 15 and recall@10 was
# 0.6; a dot product over 20k allowed rows costs about what a flat search of 20k does (a few ms).
EXACT_FILTER_ROWS = 20_000
# Above that, HNSW searches wider the fewer rows the filter allows, up to this breadth.
MAX_FILTERED_EF = 4096


@runtime_checkable
class VectorStore(Protocol):
    """Inner-product search over unit vectors, addressed by passage id."""

    kind: str

    def __len__(self) -> int: ...

    def apply(self, *, add_ids: list[str], add_vectors: np.ndarray, remove_ids: Iterable[str]) -> None:
        """Remove then add. Adding an id that exists replaces it."""

    def search(self, query: np.ndarray, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]: ...

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]: ...

    def save(self, directory: Path) -> None:
        """Persist into a generation directory (a no-op for stores that persist themselves)."""

    def reset(self) -> None:
        """Forget every vector: `rag reindex --rebuild` starts from nothing, and a self-persisting store would
        otherwise keep the old build's vectors."""


class FaissStore:
    """Exact flat search for small archives, HNSW above a size threshold (see bench/search.py for why)."""

    def __init__(self, dimension: int, *, kind: str, ann_threshold: int, hnsw_m: int, ef_search: int):
        # No defaults here: Settings holds them, and build_vector_store passes them (a second copy drifted).
        self.dimension = dimension
        self.requested_kind = kind
        self.ann_threshold = ann_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ids: list[str] = []
        self.vectors = np.zeros((0, dimension), dtype=np.float32)
        self._row_of: dict[str, int] = {}
        self._index = None  # built lazily; rebuilt after removals since HNSW cannot delete
        self._hnsw_loaded_from: Path | None = None
        self._hnsw_params: dict[int, object] = {}  # efSearch -> faiss.SearchParametersHNSW

    @property
    def kind(self) -> str:
        if self.requested_kind != "auto":
            return self.requested_kind
        return "hnsw" if len(self.ids) >= self.ann_threshold else "flat"

    def __len__(self) -> int:
        return len(self.ids)

    def apply(self, *, add_ids: list[str], add_vectors: np.ndarray, remove_ids: Iterable[str]) -> None:
        add_vectors = np.asarray(add_vectors, dtype=np.float32).reshape(-1, self.dimension)
        if len(add_ids) != len(add_vectors):
            raise ValueError("ids and vectors differ in length")
        drop = set(remove_ids) | (set(add_ids) & self._row_of.keys())
        if drop:
            keep = np.array([i for i, pid in enumerate(self.ids) if pid not in drop], dtype=np.int64)
            self.ids = [self.ids[i] for i in keep]
            self.vectors = self.vectors[keep] if len(keep) else np.zeros((0, self.dimension), dtype=np.float32)
            self._index = None
        start = len(self.ids)
        self.ids.extend(add_ids)
        self.vectors = np.concatenate([self.vectors, add_vectors]) if len(add_ids) else self.vectors
        self._row_of = {pid: i for i, pid in enumerate(self.ids)}
        if self._index is not None and len(add_ids):
            if self._index_kind != self.kind:
                self._index = None
            else:
                self._index.add(self.vectors[start:])

    def _build(self):
        import faiss

        kind = self.kind
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        else:
            index = faiss.IndexFlatIP(self.dimension)
        if len(self.vectors):
            index.add(self.vectors)
        self._index = index
        self._index_kind = kind
        return index

    def search(self, query: np.ndarray, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        if not self.ids or k <= 0:
            return []
        import faiss

        index = self._index if self._index is not None else self._build()
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allow is not None:
            rows = np.array(sorted(self._row_of[p] for p in allow if p in self._row_of), dtype=np.int64)
            if not len(rows):
                return []
            if self._index_kind == "hnsw" and len(rows) <= EXACT_FILTER_ROWS:
                return self._exact(q[0], rows, k)
            selector = faiss.IDSelectorBatch(rows)
            if self._index_kind == "hnsw":
                ef = min(MAX_FILTERED_EF, math.ceil(max(self.ef_search, k) * len(self.ids) / len(rows)))
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
            else:
                params = faiss.SearchParameters(sel=selector)
            k = min(k, len(rows))
        elif self._index_kind == "hnsw":
            # Reused, not rebuilt per query: the object costs ~10 us, a tenth of an HNSW search at 100k.
            ef = max(self.ef_search, k)
            params = self._hnsw_params.get(ef) or self._hnsw_params.setdefault(ef, faiss.SearchParametersHNSW(efSearch=ef))
        # One query gains nothing from an OpenMP team, and on a busy machine the team's barrier waits for a
        # descheduled thread: flat 10k went from 95 ms to 0.5 ms p50 single-threaded (bench/search.py).
        # libgomp keeps the thread count per calling thread, and it is restored, so index builds keep theirs.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, rows = index.search(q, min(k, len(self.ids)), params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return [(self.ids[r], s) for r, s in zip(rows[0].tolist(), scores[0].tolist()) if r >= 0]

    def _exact(self, query: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Brute-force inner product over the allowed rows: every allowed passage is considered."""
        scores = self.vectors[rows] @ query
        k = min(k, len(rows))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        top = top[np.lexsort((rows[top], -scores[top]))]  # best first; ties by row, so results are stable
        return [(self.ids[rows[i]], float(scores[i])) for i in top]

    def reset(self) -> None:
        self.ids = []
        self.vectors = np.zeros((0, self.dimension), dtype=np.float32)
        self._row_of = {}
        self._index = None

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
        for i in range(0, len(self.ids), batch):
            yield self.ids[i : i + batch], self.vectors[i : i + batch]

    def save(self, directory: Path) -> None:
        np.save(directory / "vectors.npy", self.vectors)
        (directory / "vector_ids.json").write_text(json.dumps(self.ids))
        if self.kind == "hnsw":
            import faiss

            index = self._index if self._index is not None else self._build()
            faiss.write_index(index, str(directory / "hnsw.faiss"))

    @classmethod
    def load(cls, directory: Path, dimension: int, **options) -> FaissStore:
        store = cls(dimension, **options)
        try:
            store.vectors = np.load(directory / "vectors.npy")
            store.ids = json.loads((directory / "vector_ids.json").read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"vector files in {directory} do not load: {exc}") from exc
        if store.vectors.shape != (len(store.ids), dimension):
            raise IndexCorruptError(f"vectors in {directory} have shape {store.vectors.shape}, expected ({len(store.ids)}, {dimension})")
        store._row_of = {pid: i for i, pid in enumerate(store.ids)}
        hnsw = directory / "hnsw.faiss"
        if store.kind == "hnsw" and hnsw.is_file():
            import faiss

            store._index = faiss.read_index(str(hnsw))
            store._index_kind = "hnsw"
        return store


def build_vector_store(settings: Settings, dimension: int, directory: Path | None) -> VectorStore:
    """The configured store, loaded from a generation directory when one exists."""
    if settings.vector_backend == "milvus":
        from rag.milvus_store import MilvusStore

        return MilvusStore.from_settings(settings, dimension)
    options = dict(kind=settings.faiss_kind, ann_threshold=settings.faiss_ann_threshold, hnsw_m=settings.faiss_hnsw_m, ef_search=settings.faiss_hnsw_ef_search)
    if directory is not None and (directory / "vectors.npy").is_file():
        return FaissStore.load(directory, dimension, **options)
    return FaissStore(dimension, **options)
