"""FAISS search under a date filter (#17 item 7): above the flat/HNSW threshold, a filter that allows few rows
is searched exactly; one that allows many still finds k good rows through HNSW. Synthetic clustered vectors."""

from __future__ import annotations

import numpy as np
import pytest

import rag.storage.faiss_store
from rag.storage.faiss_store import FaissStore

ROWS, DIM, K = 12_000, 32, 50


@pytest.fixture(scope="module")
def world() -> tuple[FaissStore, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, DIM))
    x = centres[rng.integers(0, len(centres), ROWS)] + 0.3 * rng.normal(size=(ROWS, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    store = FaissStore(DIM, kind="auto", ann_threshold=1_000, hnsw_m=32, ef_search=128)
    store.apply(add_ids=[f"p{i}" for i in range(ROWS)], add_vectors=x, remove_ids=[])
    assert store.kind == "hnsw"
    return store, x, rng


def exact_top(x: np.ndarray, query: np.ndarray, allowed: np.ndarray, k: int) -> list[str]:
    scores = x[allowed] @ query
    return [f"p{allowed[i]}" for i in np.argsort(-scores, kind="stable")[:k]]


def filtered_runs(world, share: float, queries: int = 15) -> tuple[int, float]:
    """(fewest results returned, mean recall@10 against exact search over the allowed rows)."""
    store, x, rng = world
    allowed = np.sort(rng.choice(ROWS, int(ROWS * share), replace=False))
    allow = {f"p{i}" for i in allowed}
    fewest, recalls = K, []
    for _ in range(queries):
        query = x[rng.integers(ROWS)]
        found = store.search(query, K, allow)
        assert {pid for pid, _ in found} <= allow
        fewest = min(fewest, len(found))
        recalls.append(len({pid for pid, _ in found[:10]} & set(exact_top(x, query, allowed, 10))) / 10)
    return fewest, float(np.mean(recalls))


def test_a_filter_allowing_few_rows_is_searched_exactly(world):
    store, x, rng = world
    fewest, recall = filtered_runs(world, share=0.005)  # 60 rows of 12,000
    assert fewest == K and recall == 1.0
    allowed = np.sort(rng.choice(ROWS, 60, replace=False))
    query = x[allowed[3]]
    found = store.search(query, 5, {f"p{i}" for i in allowed})
    assert [pid for pid, _ in found] == exact_top(x, query, allowed, 5) and found[0] == (
        f"p{allowed[3]}",
        pytest.approx(1.0, abs=1e-5),
    )
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_a_filter_allowing_many_rows_still_finds_k_good_ones_through_hnsw(world, monkeypatch):
    monkeypatch.setattr(rag.storage.faiss_store, "EXACT_FILTER_ROWS", 100)  # force the HNSW path at this size
    for share in (0.5, 0.05):
        fewest, recall = filtered_runs(world, share=share)
        assert fewest == K and recall >= 0.9, (share, fewest, recall)


def test_a_flat_store_filters_as_before(world):
    store, x, rng = world
    flat = FaissStore(DIM, kind="flat", ann_threshold=1_000, hnsw_m=32, ef_search=128)
    flat.apply(add_ids=store.ids[:2_000], add_vectors=x[:2_000], remove_ids=[])
    allowed = np.arange(0, 2_000, 7)
    found = flat.search(x[14], 10, {f"p{i}" for i in allowed})
    assert [pid for pid, _ in found] == exact_top(x, x[14], allowed, 10)
