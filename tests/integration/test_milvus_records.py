"""RAG_STORE=milvus against Milvus Lite through a file URI: the store behind IndexStore, fast (a hashing embedder).

Milvus Lite lets one process open a file, so "two replicas" here are two views of the index in one process,
each following the store's stamp the way a server does per request (api/deps.py Runtime.follow_store); the
replicas as separate processes are tests/e2e/test_milvus_replicas.py, against `milvus-lite server`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import BadInputError, IndexMissingError, VectorStoreError
from rag.core.settings import Settings
from rag.ingest.indexing import add_document, index_paths, optimize_index, reindex, remove_documents
from rag.models.prompts import PromptSet
from rag.search.retriever import Retriever
from rag.storage.loading import load_index
from rag.storage.migrate import migrate_store
from rag.storage.milvus.collections import MilvusRecords
from rag.storage.milvus.records import MilvusRecordStore
from rag.storage.store import load_live, open_store
from tests.conftest import CORPUS
from tests.fakes import HashingEmbedder
from tests.servers import free_port

QUESTION = "What was decided about the NATO-Ukraine Council?"
STORY = b"""Harbour Town Opens Floating Library

LOWMERE, 2024-05-04 - The town of Lowmere opened a floating library on its harbour on Saturday, the mayor said.
The barge holds four thousand books and will moor at a different pier each week.
"""


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


@pytest.fixture
def lite(tmp_path: Path):
    """Settings of one Milvus Lite file; its in-process server is released afterwards, as process exit would."""
    uri = str(tmp_path / "store.db")
    settings = Settings(
        _env_file=None, index_dir=tmp_path / "replica-a", store="milvus", milvus_uri=uri, rewrite_with_model=False
    )
    yield settings
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def live_rows(settings: Settings, doc_id: str) -> tuple[list[str], list[dict]]:
    """(passage ids, article rows) Milvus holds for a document, whatever any view shows."""
    records = MilvusRecords(settings, None)
    expr = f"doc_id == {json.dumps(doc_id)}"
    passages = records.call(records.client.query, records.passages, filter=expr, output_fields=["passage_id"])
    articles = records.call(records.client.query, records.articles, filter=expr, output_fields=["key"])
    return sorted(r["passage_id"] for r in passages), list(articles)


def ranked(index, embedder, settings, method="hybrid") -> list[str]:
    return [
        sp.passage.passage_id for sp in Retriever(index, embedder, settings).search(QUESTION, top_k=5, method=method)
    ]


def dense_hits(index, embedder) -> list[tuple[float, str]]:
    """The dense top 10 as (score, id), best first; passages that tie (hashed vectors can) sorted by id, since
    FAISS and Milvus order a tie differently."""
    hits = index.store.search(embedder.embed([QUESTION])[0], 10)
    return sorted(((round(s, 5), p) for p, s in hits), key=lambda h: (-h[0], h[1]))


def test_the_corpus_in_milvus_ranks_as_the_local_index_does(lite, tmp_path, embedder):
    local_settings = Settings(_env_file=None, index_dir=tmp_path / "local", rewrite_with_model=False)
    local, _ = index_paths(local_settings, embedder, [CORPUS])
    stored, report = index_paths(lite, embedder, [CORPUS])
    assert len(report.added) == 5 and stored.generation == 1
    view = load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    assert [p.passage_id for p in view.passages] == [p.passage_id for p in local.passages]
    assert view.articles == local.articles and view.manifest.documents.keys() == local.manifest.documents.keys()
    assert dense_hits(view, embedder) == dense_hits(local, embedder)
    assert [p for p, _ in view.lexical.search(QUESTION, 10)] == [p for p, _ in local.lexical.search(QUESTION, 10)]
    assert ranked(view, embedder, lite, "bm25") == ranked(local, embedder, local_settings, "bm25")
    assert not (lite.index_dir / "documents").exists()  # no raw copy only this replica would hold


def test_two_views_follow_each_others_writes(lite, embedder):
    index_paths(lite, embedder, [CORPUS])
    replica_b = lite.model_copy(update={"index_dir": lite.index_dir.parent / "replica-b"})
    view_a = load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    view_b = load_live(replica_b, embedding_model=embedder.name, dimension=embedder.dimension)
    assert (
        not open_store(replica_b).is_stale(view_b) and open_store(replica_b).refresh(view_b) is None
    )  # one read, no reload

    written, _ = add_document(lite, embedder, "lowmere.txt", STORY)
    assert open_store(replica_b).is_stale(view_b)
    assert open_store(lite).is_stale(written)  # the writer's own view too: another commit may have raced it
    view_b = open_store(replica_b).refresh(view_b)
    assert view_b is not None and "lowmere" in view_b.manifest.documents
    hits = Retriever(view_b, embedder, replica_b).search("floating library Lowmere harbour", top_k=3)
    assert hits[0].passage.doc_id == "lowmere"

    remove_documents(replica_b, embedder, ["lowmere"])
    view_a = open_store(lite).refresh(view_a)
    assert view_a is not None and "lowmere" not in view_a.manifest.documents
    assert all(
        sp.passage.doc_id != "lowmere"
        for sp in Retriever(view_a, embedder, lite).search("floating library Lowmere harbour", top_k=5)
    )
    assert live_rows(lite, "lowmere") == ([], [])  # passages and record deleted together


def test_a_replaced_article_keeps_no_passage_of_its_old_version(lite, embedder):
    long = (
        STORY
        + b"\n"
        + b" ".join(b"The library also lends maps of the coast and tide tables to sailors." for _ in range(40))
        + b"\n"
    )
    _, report = add_document(lite, embedder, "lowmere.txt", long)
    before = report.passages_embedded
    index, report = add_document(lite, embedder, "lowmere.txt", STORY)
    assert report.updated == ["lowmere"] and before > index.manifest.documents["lowmere"].passages
    passage_ids, articles = live_rows(lite, "lowmere")
    assert passage_ids == [p.passage_id for p in index.passages_of("lowmere")] and len(articles) == 1
    assert (
        load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension).articles["lowmere"].text
        == index.articles["lowmere"].text
    )


def test_a_writer_killed_before_its_records_leaves_nothing_visible_and_a_rerun_converges(lite, embedder, monkeypatch):
    index_paths(lite, embedder, [CORPUS])
    real_upsert = MilvusRecords.upsert

    def dies_at_the_records(self, collection, rows):
        if collection == self.articles and any(r["doc_id"] == "lowmere" for r in rows):
            raise VectorStoreError("killed")  # the passages are in Milvus, the record never got there
        real_upsert(self, collection, rows)

    monkeypatch.setattr(MilvusRecords, "upsert", dies_at_the_records)
    with pytest.raises(VectorStoreError):
        add_document(lite, embedder, "lowmere.txt", STORY)
    monkeypatch.setattr(MilvusRecords, "upsert", real_upsert)
    assert live_rows(lite, "lowmere")[0]  # the half write is in Milvus...
    view = load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    assert "lowmere" not in view.manifest.documents and not view.passages_of("lowmere")  # ...and nobody sees it
    assert all(
        sp.passage.doc_id != "lowmere"
        for sp in Retriever(view, embedder, lite).search("floating library Lowmere", top_k=5)
    )
    optimize_index(lite, embedder)  # sweeps what the killed writer left, and nothing else
    assert live_rows(lite, "lowmere") == ([], [])
    assert len(load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension).passages) == len(
        view.passages
    )

    index, report = add_document(lite, embedder, "lowmere.txt", STORY)  # the rerun
    assert report.added == ["lowmere"]
    passage_ids, articles = live_rows(lite, "lowmere")
    assert passage_ids == [p.passage_id for p in index.passages_of("lowmere")] and len(articles) == 1
    again = load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    assert sorted(again.manifest.documents) == sorted([*view.manifest.documents, "lowmere"])
    assert len({p.passage_id for p in again.passages}) == len(again.passages)


def test_migrate_to_milvus_and_back_without_re_embedding(lite, tmp_path, embedder):
    local_settings = lite.model_copy(update={"store": "local", "index_dir": tmp_path / "local"})
    local, _ = index_paths(local_settings, embedder, [CORPUS])
    expected = {"dense": dense_hits(local, embedder), "bm25": ranked(local, embedder, local_settings, "bm25")}
    moved = migrate_store(local_settings, to="milvus")
    assert (moved.documents, moved.passages) == (5, len(local.passages)) and moved.env()["RAG_STORE"] == "milvus"
    view = load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    assert {"dense": dense_hits(view, embedder), "bm25": ranked(view, embedder, lite, "bm25")} == expected

    back_settings = local_settings.model_copy(update={"index_dir": tmp_path / "back"})
    migrate_store(back_settings, to="local")
    back = load_index(back_settings, embedding_model=embedder.name, dimension=embedder.dimension)
    assert back.manifest.vector_backend == "faiss" and len(back.store) == len(local.passages)
    assert {"dense": dense_hits(back, embedder), "bm25": ranked(back, embedder, back_settings, "bm25")} == expected


def test_reindex_refuses_a_milvus_store(lite, embedder):
    index_paths(lite, embedder, [CORPUS])
    with pytest.raises(BadInputError, match="does not keep"):
        reindex(lite, embedder)
    assert len(load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension).manifest.documents) == 5


def test_an_empty_store_is_missing_and_an_unreachable_one_is_a_store_error(lite, embedder):
    with pytest.raises(IndexMissingError):
        load_live(lite, embedding_model=embedder.name, dimension=embedder.dimension)
    assert (
        MilvusRecordStore(lite)
        .load(embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=True)
        .generation
        == 0
    )
    nowhere = lite.model_copy(
        update={"milvus_uri": f"http://127.0.0.1:{free_port()}", "milvus_store_prefix": f"t_{uuid.uuid4().hex[:8]}"}
    )
    with pytest.raises(VectorStoreError, match="Milvus at http://127.0.0.1"):
        load_live(nowhere, embedding_model=embedder.name, dimension=embedder.dimension)


def test_two_pipelines_on_one_file_answer_alike_and_follow_an_upload(lite, real_embedder):
    """The replicas' test on a Lite file: two pipelines, each following the store as a server does per request."""
    index_paths(lite, real_embedder, [CORPUS])
    replica_b = lite.model_copy(update={"index_dir": lite.index_dir.parent / "replica-b"})
    views = [
        load_live(s, embedding_model=real_embedder.name, dimension=real_embedder.dimension) for s in (lite, replica_b)
    ]
    a, b = (Pipeline(s, v, real_embedder, None, PromptSet.load()) for s, v in zip((lite, replica_b), views))
    on_a, on_b = a.ask(QUESTION, mode="extractive"), b.ask(QUESTION, mode="extractive")
    assert not on_a.abstained and {c.doc_id for c in on_a.citations} & {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
    assert [(c.passage_id, c.quote) for c in on_a.citations] == [(c.passage_id, c.quote) for c in on_b.citations]

    add_document(lite, real_embedder, "lowmere.txt", STORY)
    b.use_index(open_store(replica_b).refresh(b.index))
    answer = b.ask("What did the town of Lowmere open on its harbour?", mode="extractive")
    assert not answer.abstained and "lowmere" in {c.doc_id for c in answer.citations}
