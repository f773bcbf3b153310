"""Vector stores keyed by passage id. FAISS on disk is the default; other engines plug in behind `VectorStore`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.core.errors import IndexCorruptError

if TYPE_CHECKING:
    from rag.core.settings import Settings

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
            params = self._hnsw_params.get(ef) or self._hnsw_params.setdefault(
                ef, faiss.SearchParametersHNSW(efSearch=ef)
            )
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
            raise IndexCorruptError(
                f"vectors in {directory} have shape {store.vectors.shape}, expected ({len(store.ids)}, {dimension})"
            )
        store._row_of = {pid: i for i, pid in enumerate(store.ids)}
        hnsw = directory / "hnsw.faiss"
        if store.kind == "hnsw" and hnsw.is_file():
            import faiss

            store._index = faiss.read_index(str(hnsw))
            store._index_kind = "hnsw"
        return store


# A part with few tombstoned rows is searched for k + that many and filtered; past this it is searched over its
# live rows as an allow set instead, since over-fetching thousands of hits costs more than the selector.
OVERFETCH_DEAD = 1024


@dataclass
class Part:
    """One segment's vectors: a FaissStore over every row it was written with, and the rows since tombstoned."""

    name: str | None  # the segment on disk; None while the rows are not committed yet
    store: FaissStore
    dead: set[str] = field(default_factory=set)
    _live: set[str] | None = None

    @property
    def live(self) -> set[str]:
        if self._live is None:
            self._live = set(self.store.ids) - self.dead
        return self._live

    def holds(self, pid: str) -> bool:
        return pid in self.store._row_of and pid not in self.dead


class SegmentedFaissStore:
    """The index's vectors as one FaissStore per segment, searched as one: each part's top k, merged by score.

    Flat parts return exactly what one flat index over all live rows returns (the same rows, the same float
    scores); a part written with an HNSW graph (rag/storage/segment_files.py) is approximate on its own rows. Removing
    rows tombstones them (an HNSW graph cannot delete); merging segments drops them for good."""

    def __init__(
        self, dimension: int, parts: list[Part], *, ann_threshold: int, hnsw_m: int, ef_search: int, kind: str = "auto"
    ):
        self.dimension = dimension
        self.parts = parts
        self.options = {"ann_threshold": ann_threshold, "hnsw_m": hnsw_m, "ef_search": ef_search}
        # Rows not yet written: HNSW only when asked for outright ("auto" decides per segment, by its size).
        self.new_kind = "hnsw" if kind == "hnsw" else "flat"

    @property
    def kind(self) -> str:
        kinds = sorted({p.store.kind for p in self.parts if len(p.store)})
        return "+".join(kinds) if kinds else "flat"

    def __len__(self) -> int:
        return sum(len(p.store) - len(p.dead) for p in self.parts)

    @property
    def ids(self) -> list[str]:
        return [pid for p in self.parts for pid in p.store.ids if pid not in p.dead]

    def new_part(self, name: str | None, ids: list[str], vectors: np.ndarray, kind: str = "flat") -> Part:
        store = FaissStore(self.dimension, kind=kind, **self.options)
        store.apply(add_ids=ids, add_vectors=vectors, remove_ids=[])
        return Part(name, store)

    def apply(self, *, add_ids: list[str], add_vectors: np.ndarray, remove_ids: Iterable[str]) -> None:
        drop = set(remove_ids) | set(add_ids)
        for part in self.parts:
            hit = (
                {pid for pid in drop if part.holds(pid)}
                if len(drop) < len(part.store)
                else {pid for pid in part.store.ids if pid in drop and pid not in part.dead}
            )
            if hit:
                part.dead |= hit
                part._live = None
        if len(add_ids):
            self.parts.append(
                self.new_part(
                    None,
                    list(add_ids),
                    np.asarray(add_vectors, dtype=np.float32).reshape(-1, self.dimension),
                    self.new_kind,
                )
            )

    def seal(self, part: Part) -> None:
        """The uncommitted rows were written as a segment: its part (the store it was written from) takes their
        place."""
        self.parts = [p for p in self.parts if p.name is not None] + [part]

    def replace(self, names: set[str], part: Part | None) -> None:
        """Segments `names` were merged into `part` (None: they held no live row)."""
        at = next((i for i, p in enumerate(self.parts) if p.name in names), len(self.parts))
        kept = [p for p in self.parts if p.name not in names]
        self.parts = kept[:at] + ([part] if part else []) + kept[at:]

    def vectors_of(self, ids: list[str]) -> np.ndarray:
        where: dict[str, tuple[FaissStore, int]] = {}
        for part in self.parts:  # later parts win: a re-added id lives in the newest
            for pid in part.live:
                where[pid] = (part.store, part.store._row_of[pid])
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for i, pid in enumerate(ids):
            store, row = where[pid]
            out[i] = store.vectors[row]
        return out

    def search(self, query: np.ndarray, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        hits: list[tuple[float, int, int, str]] = []
        for order, part in enumerate(self.parts):
            if not len(part.store):
                continue
            if allow is not None:
                # A dead id may be allowed (re-added later, it is live in a newer part): over-fetch past those.
                hidden = sum(1 for pid in part.dead if pid in allow) if len(part.dead) <= OVERFETCH_DEAD else -1
                if hidden < 0:
                    found = part.store.search(query, k, allow - part.dead)
                else:
                    found = [h for h in part.store.search(query, k + hidden, allow) if h[0] not in part.dead][:k]
            elif len(part.dead) > OVERFETCH_DEAD:
                found = part.store.search(query, k, part.live)
            else:
                found = [h for h in part.store.search(query, k + len(part.dead)) if h[0] not in part.dead][:k]
            hits.extend((-score, order, rank, pid) for rank, (pid, score) in enumerate(found))
        hits.sort()
        return [(pid, -neg) for neg, _, _, pid in hits[:k]]

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
        for part in self.parts:
            rows = [i for i, pid in enumerate(part.store.ids) if pid not in part.dead]
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                yield [part.store.ids[i] for i in chunk], part.store.vectors[chunk]

    def save(self, directory: Path) -> None:
        """Every live row as one flat store in `directory` (segments are written by rag/storage/segment_files.py)."""
        ids, vectors = _live_rows(self.parts)
        self.new_part(None, ids, vectors, self.new_kind).store.save(directory)

    def reset(self) -> None:
        self.parts = []


def _live_rows(parts: list[Part]) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for part in parts:
        rows = [i for i, pid in enumerate(part.store.ids) if pid not in part.dead]
        ids.extend(part.store.ids[i] for i in rows)
        blocks.append(part.store.vectors[rows])
    dimension = parts[0].store.dimension if parts else 0
    return ids, (np.concatenate(blocks) if blocks else np.zeros((0, dimension), dtype=np.float32))


def faiss_options(settings: Settings) -> dict:
    return {
        "ann_threshold": settings.faiss_ann_threshold,
        "hnsw_m": settings.faiss_hnsw_m,
        "ef_search": settings.faiss_hnsw_ef_search,
    }


def build_vector_store(settings: Settings, dimension: int, directory: Path | None) -> VectorStore:
    """The configured store: Milvus, or FAISS loaded from an old single-generation folder (format 1) when one
    is given, else an empty segmented FAISS store (rag/storage/segments.py fills it from the segments)."""
    if settings.vector_backend == "milvus":
        from rag.storage.milvus.client import MilvusStore

        return MilvusStore.from_settings(settings, dimension)
    if directory is not None and (directory / "vectors.npy").is_file():
        return FaissStore.load(directory, dimension, kind=settings.faiss_kind, **faiss_options(settings))
    return SegmentedFaissStore(dimension, [], kind=settings.faiss_kind, **faiss_options(settings))
