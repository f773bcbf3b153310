"""Admission over HTTP: a request class that is full answers 503 + Retry-After on arrival, while another class
is still served. Hashing embedder and scripted generator over a tmp index, as in test_api_fakes."""

from __future__ import annotations

import asyncio
import threading

import httpx

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from tests.fakes import HashingEmbedder, ScriptedGenerator, strength_rule

SLOW = "zebra"  # a question with this word blocks in the embedder until the test lets it go
QUESTION = "What was decided about the NATO-Ukraine Council?"
WAIT_S = 20


class HeldEmbedder(HashingEmbedder):
    def __init__(self, dimension: int, release: threading.Event):
        super().__init__(dimension)
        self.release = release

    def embed(self, texts, *args, **kwargs):
        if any(SLOW in t for t in texts):
            assert self.release.wait(WAIT_S)
        return super().embed(texts, *args, **kwargs)


def test_a_full_class_is_refused_at_once_while_another_class_is_served(settings, prompts, corpus_copy):
    release = threading.Event()
    embedder = HeldEmbedder(256, release)
    index, _ = index_paths(settings, embedder, [corpus_copy])
    s = settings.model_copy(
        update={
            "cpu_threads": 2,
            "admission_limits": {**settings.admission_limits, "extractive": 1},
            "admission_queues": {**settings.admission_queues, "extractive": 1},
            # Far longer than the client waits: a 503 that came from waiting out the deadline would time out instead.
            "admission_deadlines_s": {**settings.admission_deadlines_s, "extractive": 120.0},
        }
    )
    app = create_app(s, Pipeline(s, index, embedder, ScriptedGenerator("unused"), prompts, strength_rule()))
    lane = app.state.runtime.admission.lanes["extractive"]
    held = {"question": f"{QUESTION} {SLOW}", "mode": "extractive"}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=WAIT_S) as c:
            first = [asyncio.create_task(c.post("/v1/ask", json=held)) for _ in range(2)]
            for _ in range(WAIT_S * 100):
                if lane.running == 1 and lane.waiting == 1:
                    break
                await asyncio.sleep(0.01)
            refused = await c.post("/v1/ask", json={"question": QUESTION, "mode": "extractive"})
            search = await c.post("/v1/search", json={"query": "NATO Ukraine Council"})
            generated = await c.post(
                "/v1/ask", json={"question": QUESTION, "mode": "generate"}
            )  # the model's classes too
            still_waiting = lane.waiting
            release.set()
            done = await asyncio.gather(*first)
            metrics = (await c.get("/metrics")).text
            return refused, search, generated, still_waiting, done, metrics

    try:
        refused, search, generated, still_waiting, done, metrics = asyncio.run(scenario())
    finally:
        app.state.runtime.admission.shutdown()
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "busy"
    assert int(refused.headers["Retry-After"]) >= 1 and "RAG_ADMISSION_QUEUES" in refused.json()["error"]["message"]
    assert search.status_code == 200 and search.json()["results"]
    assert generated.status_code == 200
    assert still_waiting == 1  # the refusal did not take or disturb the waiter's place
    assert [r.status_code for r in done] == [200, 200]
    assert 'rag_admission_rejected_total{class="extractive",reason="full"} 1.0' in metrics
    assert 'rag_admission_queue_depth{class="extractive"} 0.0' in metrics
    assert 'rag_admission_wait_seconds_count{class="search"} 1.0' in metrics
