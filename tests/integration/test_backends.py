"""One suite, every vector store: FAISS flat and HNSW, Milvus Lite through a file URI, and a Milvus server through
an http URI (the code path of a cluster), each started the way a user would start it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import IndexMismatchError
from rag.core.settings import Settings
from rag.ingest.indexing import index_paths, reindex, remove_documents
from rag.models.prompts import PromptSet
from rag.storage.faiss_store import FaissStore, SegmentedFaissStore, VectorStore, build_vector_store
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from rag.storage.migrate import migrate
from rag.storage.milvus import client as milvus_client
from tests.conftest import CORPUS
from tests.fakes import HashingEmbedder
from tests.servers import MilvusLiteServer

BACKENDS = ["faiss-flat", "faiss-hnsw", "milvus-lite", "milvus-server"]
EXACT = {"faiss-flat"}  # HNSW is approximate; Milvus's AUTOINDEX may build HNSW as well
DIM = 32
QUESTION = "What was decided about the NATO-Ukraine Council?"
SERVER_START_S = 60


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """`milvus-lite server` in its own process, listening on a free loopback port: a stand-in for Milvus standalone."""
    folder = tmp_path_factory.mktemp("milvus-server")
    server = MilvusLiteServer(folder / "data", folder / "server.log", start_timeout_s=SERVER_START_S).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def backend_settings(backend, request, tmp_path) -> Settings:
    """Settings a user would set for this backend; only the URI differs between Milvus Lite and a server."""
    values: dict = {
        "_env_file": None,
        "index_dir": tmp_path / "index",
        "corpus_dir": CORPUS,
        "rewrite_with_model": False,
    }
    if backend.startswith("faiss"):
        values.update(vector_backend="faiss", faiss_kind=backend.split("-")[1])
    else:
        uri = str(tmp_path / "milvus.db") if backend == "milvus-lite" else request.getfixturevalue("milvus_server")
        # A server outlives each test, so each test gets its own collection.
        values.update(vector_backend="milvus", milvus_uri=uri, milvus_collection=f"t_{uuid.uuid4().hex[:12]}")
    settings = Settings(**values)
    yield settings
    if backend == "milvus-lite":
        _release_lite(settings.milvus_uri)


def _release_lite(uri: str) -> None:
    """What process exit does to Milvus Lite: stop its in-process server and release the file lock."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def _open(settings: Settings, dim: int = DIM) -> VectorStore:
    return build_vector_store(settings, dim, None)


def _reopen(store: VectorStore, settings: Settings, tmp_path: Path, dim: int = DIM) -> VectorStore:
    """Persist, forget the object (and for Lite its server), load again as a new process would."""
    gen = tmp_path / "gen"
    gen.mkdir(exist_ok=True)
    store.save(gen)
    if isinstance(store, (FaissStore, SegmentedFaissStore)):
        return build_vector_store(settings, dim, gen)
    store.close()
    if settings.milvus_uri.endswith(".db"):
        _release_lite(settings.milvus_uri)
    return _open(settings, dim)


def _unit(rows: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _reference(
    ids: list[str], vectors: np.ndarray, query: np.ndarray, k: int, allow: set[str] | None = None
) -> list[str]:
    scores = vectors @ query
    order = sorted((i for i in range(len(ids)) if allow is None or ids[i] in allow), key=lambda i: -scores[i])
    return [ids[i] for i in order[:k]]


def _check_ranking(backend: str, got: list[tuple[str, float]], expected: list[str], scores: dict[str, float]) -> None:
    ids = [pid for pid, _ in got]
    for pid, score in got:
        assert score == pytest.approx(scores[pid], abs=1e-4)  # inner product of unit vectors, on every engine
    if backend in EXACT:
        assert ids == expected
    else:
        assert ids[0] == expected[0]
        assert len(set(ids) & set(expected)) >= 0.8 * len(expected)


@pytest.fixture
def loaded(backend, backend_settings):
    ids = [f"doc{i // 4}#{i % 4}" for i in range(300)]
    vectors = _unit(300, seed=1)
    store = _open(backend_settings)
    store.apply(add_ids=ids, add_vectors=vectors, remove_ids=[])
    assert store.kind == ("milvus" if backend.startswith("milvus") else backend.split("-")[1])
    yield store, ids, vectors
    if hasattr(store, "close"):
        store.close()


def test_apply_and_search(backend, loaded):
    store, ids, vectors = loaded
    assert len(store) == 300 and isinstance(store, VectorStore)
    for seed in range(5):
        query = _unit(1, seed=100 + seed)[0]
        got = store.search(query, 10)
        _check_ranking(backend, got, _reference(ids, vectors, query, 10), dict(zip(ids, vectors @ query)))
    assert store.search(vectors[7], 1)[0][0] == ids[7]
    assert store.search(vectors[7], 0) == []


def test_remove_and_replace(backend, loaded):
    store, ids, vectors = loaded
    gone = [pid for pid in ids if pid.startswith("doc3#")]
    store.apply(add_ids=[], add_vectors=np.zeros((0, DIM), np.float32), remove_ids=gone)
    assert len(store) == 300 - len(gone)
    for i, pid in enumerate(ids[12:16]):
        hits = {h for h, _ in store.search(vectors[12 + i], 20)}
        assert pid not in hits
    fresh = _unit(1, seed=999)
    store.apply(add_ids=[ids[0]], add_vectors=fresh, remove_ids=[])  # an id that exists is replaced, not doubled
    assert len(store) == 300 - len(gone)
    top, score = store.search(fresh[0], 1)[0]
    assert top == ids[0] and score == pytest.approx(1.0, abs=1e-4)
    # A re-run after a crash repeats the same writes: nothing changes and nothing fails.
    store.apply(add_ids=[ids[0]], add_vectors=fresh, remove_ids=gone)
    assert len(store) == 300 - len(gone)


def test_allow_filter(backend, loaded, monkeypatch):
    store, ids, vectors = loaded
    query = _unit(1, seed=7)[0]
    scores = dict(zip(ids, vectors @ query))
    small = set(ids[::9]) | {"not-a-passage#0"}
    got = store.search(query, 5, allow=small)
    assert {pid for pid, _ in got} <= small
    _check_ranking(backend, got, _reference(ids, vectors, query, 5, small), scores)
    assert store.search(query, 5, allow=set()) == []
    assert [pid for pid, _ in store.search(query, 5, allow={ids[3]})] == [ids[3]]
    # Force Milvus through the wide-filter paths (post-filter, then chunked expressions) with a small corpus.
    monkeypatch.setattr(milvus_client, "FILTER_CHUNK", 40)
    monkeypatch.setattr(milvus_client, "OVERFETCH", 1)
    wide = set(ids[1::3])
    got = store.search(query, 8, allow=wide)
    assert {pid for pid, _ in got} <= wide
    _check_ranking(backend, got, _reference(ids, vectors, query, 8, wide), scores)


def test_iter_vectors_and_reset(loaded):
    store, ids, vectors = loaded
    seen: dict[str, np.ndarray] = {}
    for batch_ids, batch in store.iter_vectors(batch=64):
        assert batch.shape == (len(batch_ids), DIM) and batch.dtype == np.float32
        seen.update(zip(batch_ids, batch))
    assert sorted(seen) == sorted(ids)
    for pid, vec in zip(ids, vectors):
        np.testing.assert_allclose(seen[pid], vec, atol=1e-6)
    store.reset()
    assert len(store) == 0 and store.search(vectors[0], 3) == []


def test_persists_across_reload(backend, backend_settings, loaded, tmp_path):
    store, ids, vectors = loaded
    store.apply(add_ids=[], add_vectors=np.zeros((0, DIM), np.float32), remove_ids=ids[:10])
    again = _reopen(store, backend_settings, tmp_path)
    assert len(again) == 290
    query = _unit(1, seed=3)[0]
    _check_ranking(
        backend, again.search(query, 10), _reference(ids[10:], vectors[10:], query, 10), dict(zip(ids, vectors @ query))
    )


@pytest.mark.parametrize("backend", ["milvus-lite", "milvus-server"])
def test_milvus_refuses_a_collection_of_another_dimension(backend, backend_settings):
    _open(backend_settings).apply(add_ids=["a#0"], add_vectors=_unit(1, 0), remove_ids=[])
    other = _open(backend_settings, dim=16)
    with pytest.raises(IndexMismatchError, match="RAG_MILVUS_COLLECTION"):
        other.search(np.ones(16, np.float32), 3)
    other.reset()  # what `rag reindex --rebuild` does for a new embedder
    other.apply(add_ids=["a#0"], add_vectors=np.ones((1, 16), np.float32) / 4, remove_ids=[])
    assert len(other) == 1


# --- the product's path: index -> load -> Pipeline.search, on data/corpus ----------------------------------------
def _top(settings: Settings, embedder: HashingEmbedder, method: str = "hybrid", k: int = 5) -> list[str]:
    index = load_index(settings, embedding_model=embedder.name, dimension=embedder.dimension)
    pipeline = Pipeline(settings, index, embedder, None, PromptSet.load())
    return [r.passage.passage_id for r in pipeline.search(QUESTION, top_k=k, method=method)]


@pytest.fixture(scope="module")
def faiss_reference(tmp_path_factory) -> dict[str, list[str]]:
    settings = Settings(
        _env_file=None,
        index_dir=tmp_path_factory.mktemp("ref") / "index",
        vector_backend="faiss",
        faiss_kind="flat",
        rewrite_with_model=False,
    )
    embedder = HashingEmbedder(256)
    index_paths(settings, embedder, [CORPUS])
    return {method: _top(settings, embedder, method) for method in ("hybrid", "dense")}


def test_pipeline_search_matches_on_every_backend(backend, backend_settings, faiss_reference):
    embedder = HashingEmbedder(256)
    index, report = index_paths(backend_settings, embedder, [CORPUS])
    assert len(report.added) == 5 and len(index.store) == len(index.passages)
    assert read_manifest(backend_settings.index_dir).vector_backend == backend_settings.vector_backend
    for method, expected in faiss_reference.items():
        got = _top(backend_settings, embedder, method)
        if backend in EXACT:
            assert got == expected
        else:
            assert got[0] == expected[0] and len(set(got) & set(expected)) >= 4


def test_removal_and_rebuild_leave_no_stale_vectors(backend, backend_settings):
    embedder = HashingEmbedder(256)
    index_paths(backend_settings, embedder, [CORPUS])
    index, _ = remove_documents(backend_settings, embedder, ["001_d33884d0ecc97606"])
    assert len(index.store) == len(index.passages)
    assert not any(pid.startswith("001_") for pid in _top(backend_settings, embedder, "dense", k=20))
    rechunked = backend_settings.model_copy(
        update={"chunk_size": 400, "chunk_overlap": 10}
    )  # fewer passages: old ids left over
    rebuilt, _ = reindex(rechunked, embedder, rebuild=True)
    # Milvus persists itself: without reset() the vectors of the 110-word passages would still be there.
    assert (
        len(rebuilt.store)
        == len(rebuilt.passages)
        == len(load_index(rechunked, embedding_model=embedder.name, dimension=256).passages)
    )
    stored = {pid for ids, _ in rebuilt.store.iter_vectors() for pid in ids}
    assert stored == set(rebuilt.passage_by_id)


def test_migrate_faiss_to_milvus_and_back(tmp_path, milvus_server):
    embedder = HashingEmbedder(256)
    faiss_settings = Settings(_env_file=None, index_dir=tmp_path / "index", faiss_kind="flat", rewrite_with_model=False)
    original, _ = index_paths(faiss_settings, embedder, [CORPUS])
    before = {m: _top(faiss_settings, embedder, m) for m in ("hybrid", "dense")}

    for uri in (str(tmp_path / "lite" / "milvus.db"), milvus_server):
        collection = f"m_{uuid.uuid4().hex[:12]}"
        report = migrate(faiss_settings, to="milvus", uri=uri, collection=collection)
        assert report.vectors == len(original.passages) and report.milvus_uri == uri
        # What the user does next: set the backend and URI; nothing else changes.
        milvus_settings = faiss_settings.model_copy(
            update={"vector_backend": "milvus", "milvus_uri": uri, "milvus_collection": collection}
        )
        manifest = read_manifest(faiss_settings.index_dir)
        assert (
            manifest.vector_backend == "milvus"
            and manifest.vector_kind == "milvus"
            and manifest.generation == report.generation
        )
        assert {m: _top(milvus_settings, embedder, m) for m in before} == before
        with pytest.raises(IndexMismatchError, match="rag migrate"):
            load_index(faiss_settings, embedding_model=embedder.name, dimension=256)
        # New documents go to Milvus from now on.
        extra = tmp_path / f"extra-{collection}.txt"
        extra.write_text("The zebra council of the alliance approved a striped flag in Vilnius.\n")
        index, _ = index_paths(milvus_settings, embedder, [extra])
        assert len(index.store) == len(index.passages)
        remove_documents(milvus_settings, embedder, [extra.stem])
        back = migrate(milvus_settings, to="faiss")
        assert back.target == "faiss" and read_manifest(faiss_settings.index_dir).vector_backend == "faiss"
        assert {m: _top(faiss_settings, embedder, m) for m in before} == before
        if uri.endswith(".db"):
            _release_lite(uri)


def test_migrate_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rag.cli.main import app

    for key in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no developer .env is read from here
    embedder = HashingEmbedder(256)
    settings = Settings(_env_file=None, index_dir=tmp_path / "index")
    index_paths(settings, embedder, [CORPUS])
    result = CliRunner().invoke(app, ["--index-dir", str(tmp_path / "index"), "migrate", "--to", "milvus"])
    assert result.exit_code == 0, result.output
    assert (
        "RAG_VECTOR_BACKEND=milvus" in result.output
        and f"RAG_MILVUS_URI={tmp_path / 'index' / 'milvus.db'}" in result.output
    )
    assert read_manifest(settings.index_dir).vector_backend == "milvus"
    # The default URI puts Milvus Lite's file inside the index directory, so the default settings find it.
    monkeypatch.setenv("RAG_VECTOR_BACKEND", "milvus")
    assert _top(Settings(_env_file=None, index_dir=tmp_path / "index"), embedder)
    _release_lite(str(tmp_path / "index" / "milvus.db"))
    refused = CliRunner().invoke(app, ["--index-dir", str(tmp_path / "index"), "migrate", "--to", "chroma"])
    assert refused.exit_code != 0
