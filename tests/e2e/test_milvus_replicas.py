"""Stateless replicas (issue #14): a Milvus server on 127.0.0.1 (`milvus-lite server`), `rag index` and two
`rag serve` replicas with RAG_STORE=milvus, each with its own empty RAG_INDEX_DIR, as a user runs them.

The real MiniLM through ONNX Runtime (it starts in about a second) and extractive answers (no generator), so the
whole module takes well under two minutes. The tests run in order and share the servers: upload on A, answer on
B; delete on B, gone on A; the council question alike on both; A killed mid-batch and the batch rerun on B; a
fresh replica with an empty folder; one file uploaded through both at once; Milvus stopped (503s) and started
again (nothing lost).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, ROOT
from tests.servers import MilvusLiteServer, free_port, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RAG = [sys.executable, "-m", "rag.cli.main"]
QUESTION = "What was decided about the NATO-Ukraine Council?"
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
STORY = b"""Harbour Town Opens Floating Library

LOWMERE, 2024-05-04 - The town of Lowmere opened a floating library on its harbour on Saturday, the mayor said.
The barge holds four thousand books and will moor at a different pier each week.
Volunteers from the rowing club built the shelves over the winter months.
"""
BATCH = 10
READY_S = 180
CALL = httpx.Timeout(120.0, connect=10.0)


def batch_article(n: int) -> bytes:
    """Long enough for several passages, so a kill can land between an article's passages and its record."""
    body = " ".join(
        f"Councillor {n} said the ferry route {n} would carry {n * 7 + i} passengers in week {i}." for i in range(60)
    )
    return f"Ferry Route {n} Report\n\nPORT ELLEN, 2024-06-{n + 1:02d} - {body}\n".encode()


class Cluster:
    def __init__(self, home: Path):
        self.home = home
        self.milvus = MilvusLiteServer(home / "milvus-data", home / "milvus.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        self.env.update(
            {
                "PYTHONPATH": str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", ""),
                "RAG_STORE": "milvus",
                "RAG_MILVUS_URI": self.milvus.url,
                "RAG_EMBEDDING_BACKEND": "onnx",
                "RAG_GENERATOR_BACKEND": "none",
                "RAG_MODE": "extractive",
                "RAG_N_THREADS": "1",
                "RAG_QUERY_THREADS": "1",
                "OMP_NUM_THREADS": "1",
            }
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.urls: dict[str, str] = {}

    def rag(self, *args: str, folder: str) -> subprocess.CompletedProcess:
        env = {**self.env, "RAG_INDEX_DIR": str(self.home / folder)}
        return subprocess.run([*RAG, *args], cwd=self.home, env=env, capture_output=True, text=True, timeout=300)

    def start(self, name: str, *, ready: str = "/readyz") -> str:
        """A replica on a free port with its own, empty index folder; returns once `ready` answers 200."""
        folder = self.home / f"replica-{name}-{len(self.procs)}"
        port = free_port()
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*RAG, "serve", "--port", str(port)],
                cwd=self.home,
                env={**self.env, "RAG_INDEX_DIR": str(folder)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name], self.urls[name] = proc, f"http://127.0.0.1:{port}"
        wait_until_ready(proc, self.urls[name] + ready, log, READY_S)
        return self.urls[name]

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.milvus.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("replicas")
    cluster = Cluster(home)
    try:
        cluster.milvus.start()
        done = cluster.rag("index", str(CORPUS), folder="writer")
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (home / "writer" / "documents").exists()  # the writer kept no copy of its own
        cluster.start("a")
        cluster.start("b")
        yield cluster
    finally:
        cluster.stop_all()


def client(cluster: Cluster, name: str) -> httpx.Client:
    return httpx.Client(base_url=cluster.urls[name], timeout=CALL)


def ask(cluster: Cluster, name: str, question: str) -> dict:
    with client(cluster, name) as http:
        r = http.post("/v1/ask", json={"question": question, "mode": "extractive"})
    assert r.status_code == 200, r.text
    return r.json()


def citations(answer: dict) -> list[tuple[str, str, str]]:
    return [(c["doc_id"], c["passage_id"], c["quote"]) for c in answer["citations"]]


def test_upload_through_a_is_answered_by_b(cluster):
    with client(cluster, "a") as a:
        r = a.post("/v1/documents", files={"file": ("lowmere.txt", STORY, "text/plain")})
    assert r.status_code == 201, r.text
    answer = ask(cluster, "b", "What did the town of Lowmere open on its harbour?")
    assert not answer["abstained"], answer
    assert "lowmere" in {c["doc_id"] for c in answer["citations"]}
    assert "floating library" in answer["answer"]


def test_delete_through_b_is_gone_from_a(cluster):
    with client(cluster, "b") as b:
        assert b.delete("/v1/documents/lowmere").status_code == 200
    with client(cluster, "a") as a:
        hits = a.post("/v1/search", json={"query": "Lowmere floating library harbour barge", "top_k": 10})
        assert hits.status_code == 200, hits.text
        assert "lowmere" not in json.dumps(hits.json())
        assert a.get("/v1/documents/lowmere").status_code == 404


def test_info_reads_the_index_from_milvus(cluster):
    done = cluster.rag("info", "--json", folder="info")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["documents"] == 5 and info["vector_store"].startswith("milvus") and not (cluster.home / "info").exists()


def test_both_replicas_answer_the_council_question_with_the_same_citations(cluster):
    on_a, on_b = ask(cluster, "a", QUESTION), ask(cluster, "b", QUESTION)
    assert not on_a["abstained"] and {c["doc_id"] for c in on_a["citations"]} & COUNCIL_DOCS, on_a
    assert citations(on_a) == citations(on_b) and on_a["answer"] == on_b["answer"]


def test_a_replica_killed_mid_batch_and_the_batch_rerun_leaves_each_article_once(cluster):
    names = [f"ferry{n:02d}" for n in range(BATCH)]
    answered: list[str] = []

    def upload_batch() -> None:
        with client(cluster, "a") as a:
            for name in names:
                try:
                    r = a.post(
                        "/v1/documents", files={"file": (f"{name}.txt", batch_article(int(name[5:])), "text/plain")}
                    )
                except httpx.TransportError:
                    return  # the replica died under this upload
                answered.append(name if r.status_code == 201 else f"{name}: {r.status_code}")

    from pymilvus import MilvusClient

    milvus = MilvusClient(uri=cluster.milvus.url)
    worker = threading.Thread(target=upload_batch)
    worker.start()
    deadline = time.monotonic() + 120
    while len(answered) < 3 and worker.is_alive():
        assert time.monotonic() < deadline, "the first uploads did not finish"
        time.sleep(0.02)
    # Killed as soon as the next article's first passages are in Milvus: usually before its record is.
    in_flight = json.dumps(names[len(answered)])
    while not milvus.query(
        "newsrag_store_passages", filter=f"doc_id == {in_flight}", output_fields=["passage_id"], limit=1
    ):
        assert time.monotonic() < deadline and worker.is_alive(), "the next upload wrote nothing"
        time.sleep(0.005)
    cluster.kill("a")
    milvus.close()
    worker.join(60)
    assert 3 <= len(answered) < BATCH, answered
    assert all(":" not in a for a in answered), answered

    killed = names[len(answered)]
    with client(cluster, "b") as b:
        for name in names:  # the rerun, through the other replica
            r = b.post("/v1/documents", files={"file": (f"{name}.txt", batch_article(int(name[5:])), "text/plain")})
            # The one in flight: added again when the kill came before its record (the usual case), else unchanged.
            assert r.status_code in ((200, 201) if name == killed else (200,) if name in answered else (201,)), (
                name,
                r.text,
            )
        listed = [d["doc_id"] for d in b.get("/v1/documents").json()["documents"]]
        for name in names:
            assert listed.count(name) == 1
            detail = b.get(f"/v1/documents/{name}").json()
            assert len(detail["passage_ids"]) == detail["passages"] > 1
            assert detail["passage_ids"] == [f"{name}#{i}" for i in range(detail["passages"])]

    fresh = cluster.start("a")  # a new replica in place of A, with a new empty folder
    with httpx.Client(base_url=fresh, timeout=CALL) as a:
        assert sorted(d["doc_id"] for d in a.get("/v1/documents").json()["documents"]) == sorted(listed)
    assert_milvus_holds_each_once(cluster, names)


def test_two_replicas_indexing_the_same_file_at_once_converge_to_one_copy(cluster):
    story = batch_article(42).replace(b"Ferry Route 42", b"Twin Upload")
    statuses: dict[str, int] = {}

    def upload(name: str) -> None:
        with client(cluster, name) as http:
            statuses[name] = http.post("/v1/documents", files={"file": ("twin.txt", story, "text/plain")}).status_code

    workers = [threading.Thread(target=upload, args=(name,)) for name in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert set(statuses.values()) <= {200, 201} and 201 in statuses.values(), statuses
    for name in ("a", "b"):
        with client(cluster, name) as http:
            assert [d["doc_id"] for d in http.get("/v1/documents").json()["documents"]].count("twin") == 1
    assert_milvus_holds_each_once(cluster, ["twin"])


def assert_milvus_holds_each_once(cluster: Cluster, names: list[str]) -> None:
    """Milvus itself, not a replica's view: one record per article, and exactly its live passages."""
    from pymilvus import MilvusClient

    milvus = MilvusClient(uri=cluster.milvus.url)
    try:
        expr = f"doc_id in {json.dumps(names)}"
        heads = milvus.query(
            "newsrag_store_articles", filter=expr + " and piece == 0", output_fields=["doc_id", "record"]
        )
        rows = milvus.query("newsrag_store_passages", filter=expr, output_fields=["passage_id", "doc_id"])
    finally:
        milvus.close()
    assert sorted(h["doc_id"] for h in heads) == names
    expected = sorted(f"{h['doc_id']}#{i}" for h in heads for i in range(json.loads(h["record"])["record"]["passages"]))
    assert sorted(r["passage_id"] for r in rows) == expected


def test_milvus_outage_is_a_clear_503_and_loses_no_document(cluster):
    with client(cluster, "b") as b:
        before = sorted(d["doc_id"] for d in b.get("/v1/documents").json()["documents"])
        cluster.milvus.stop()
        try:
            started = time.monotonic()
            r = b.post("/v1/ask", json={"question": QUESTION, "mode": "extractive"})
            assert r.status_code == 503 and "index_unavailable" in r.text and "Milvus" in r.text, r.text
            assert time.monotonic() - started < 15
            up = b.post("/v1/documents", files={"file": ("lowmere.txt", STORY, "text/plain")})
            assert up.status_code == 503, up.text
            late = cluster.start("c", ready="/healthz")  # a replica started during the outage
            assert httpx.get(late + "/readyz", timeout=CALL).status_code == 503
        finally:
            cluster.milvus.start()
        deadline = time.monotonic() + 60
        while (r := b.get("/v1/documents")).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.5)
        assert sorted(d["doc_id"] for d in r.json()["documents"]) == before
        assert not ask(cluster, "b", QUESTION)["abstained"]
    with client(cluster, "c") as c:  # ready once Milvus is back, without a restart
        assert c.get("/readyz").json()["index"]["documents"] == len(before)


def test_a_writer_killed_on_a_lite_file_and_rerun_leaves_each_article_once(tmp_path):
    """The kill against Milvus Lite through a file URI. One process at a time may open the file, so the writer is
    `rag index` (the batch a replica would write), killed with SIGKILL at seeded moments once its commits have
    begun, then run to the end; the file is read in this process afterwards."""
    from milvus_lite.server_manager import server_manager_instance

    from rag.core.settings import Settings
    from rag.storage.milvus.collections import MilvusRecords
    from rag.storage.milvus.records import load_stored

    batch = tmp_path / "batch"
    batch.mkdir()
    names = [f"ferry{n:02d}" for n in range(12)]
    for n, name in enumerate(names):
        (batch / f"{name}.txt").write_bytes(batch_article(n))
    uri = tmp_path / "store.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "RAG_STORE": "milvus",
            "RAG_MILVUS_URI": str(uri),
            "RAG_EMBEDDING_BACKEND": "onnx",
            "RAG_COMMIT_EVERY_ARTICLES": "2",
            "RAG_N_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    settings = Settings(_env_file=None, store="milvus", milvus_uri=str(uri), index_dir=tmp_path / "reader")
    rng = random.Random(14)
    partial = []
    for kill in range(3):
        writer = subprocess.Popen(
            [*RAG, "index", str(batch)],
            cwd=tmp_path,
            env={**env, "RAG_INDEX_DIR": str(tmp_path / f"writer-{kill}")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start_size, deadline = folder_size(uri), time.monotonic() + 120
        while folder_size(uri) < start_size + 50_000 and writer.poll() is None:  # its first commit is on disk
            assert time.monotonic() < deadline, "the writer committed nothing"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
        try:
            partial.append(len(load_stored(settings).manifest.documents))
        finally:
            server_manager_instance.release_server(str(uri))
    assert any(0 < n < len(names) for n in partial), partial  # some kill landed mid-batch

    done = subprocess.run(
        [*RAG, "index", str(batch)],
        cwd=tmp_path,
        env={**env, "RAG_INDEX_DIR": str(tmp_path / "writer-last")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    try:
        index = load_stored(settings)
        assert sorted(index.manifest.documents) == names
        for name in names:
            assert [p.passage_id for p in index.passages_of(name)] == [
                f"{name}#{i}" for i in range(index.manifest.documents[name].passages)
            ]
        records = MilvusRecords(settings, None)
        rows = records.call(
            records.client.query,
            records.passages,
            filter=f"doc_id in {json.dumps(names)}",
            output_fields=["passage_id"],
        )
        assert sorted(r["passage_id"] for r in rows) == sorted(
            p.passage_id for p in index.passages
        )  # nothing more in Milvus either
    finally:
        server_manager_instance.release_server(str(uri))


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
