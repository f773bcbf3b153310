"""Prometheus metrics, one registry per app so tests and several apps in a process never share counters."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.core.types import Answer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time until the response was fully sent",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retrieval = Histogram(
            "rag_retrieval_seconds", "Question to evidence selected", buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "rag_ttft_seconds",
            "Question to first generated token (includes retrieval and prefill)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.generation = Histogram(
            "rag_generation_seconds", "Time spent generating", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens_per_s = Histogram(
            "rag_generation_tokens_per_second", "Decode speed of each answer", buckets=TOKENS_PER_S_BUCKETS, registry=r
        )
        self.completion_tokens = Counter("rag_completion_tokens", "Tokens generated", registry=r)
        self.answers = Counter("rag_answers", "Answers by mode and outcome", ["mode", "outcome"], registry=r)
        self.rejected = Counter(
            "rag_queue_rejected", "Requests turned away because the model queue was full", registry=r
        )
        self.queue_depth = Gauge("rag_queue_depth", "Requests admitted and waiting for the model", registry=r)
        self.in_flight = Gauge(
            "rag_generation_in_flight", "Requests admitted to the model queue (waiting or running)", registry=r
        )
        self.index_documents = Gauge("rag_index_documents", "Documents in the live index", registry=r)
        self.index_passages = Gauge("rag_index_passages", "Passages in the live index", registry=r)
        self.index_generation = Gauge("rag_index_generation", "Generation number of the live index", registry=r)
        self.ready = Gauge("rag_ready", "1 when the index and models are loaded", registry=r)
        self.model_busy = Gauge(
            "rag_model_busy_seconds",
            "Time the model has been generating since start (its rate is the share of time it works)",
            registry=r,
        )
        self.admission_rejected = Counter(
            "rag_admission_rejected",
            "Requests refused with 503 by class and reason (full, deadline, expired)",
            ["class", "reason"],
            registry=r,
        )
        self.admission_wait = Histogram(
            "rag_admission_wait_seconds",
            "Arrival until the request's work started (generate, stream: until it had the model)",
            ["class"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.admission_depth = Gauge(
            "rag_admission_queue_depth",
            "Requests admitted and waiting, by class (generate, stream: not yet had the model)",
            ["class"],
            registry=r,
        )
        self.admission_running = Gauge(
            "rag_admission_in_flight", "Requests admitted and not finished, by class", ["class"], registry=r
        )

    # AdmissionObserver (api/admission.py), called by the CPU lanes and the model queue.
    def refused(self, klass: str, reason: str) -> None:
        self.admission_rejected.labels(klass, reason).inc()
        if klass in ("generate", "stream"):
            self.rejected.inc()  # the older, class-less count of model refusals

    def waited(self, klass: str, seconds: float) -> None:
        self.admission_wait.labels(klass).observe(seconds)

    def bind_model(self, busy_seconds: Callable[[], float]) -> None:
        self.model_busy.set_function(busy_seconds)

    def bind_admission(self, klass: str, *, depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.admission_depth.labels(klass).set_function(depth)
        self.admission_running.labels(klass).set_function(in_flight)

    def bind(
        self,
        *,
        queue_depth: Callable[[], float],
        in_flight: Callable[[], float],
        index_stats: Callable[[], tuple[int, int, int]],
        ready: Callable[[], bool],
    ) -> None:
        """Gauges read live state at scrape time, so no code path can forget to update them."""
        self.queue_depth.set_function(queue_depth)
        self.in_flight.set_function(in_flight)
        self.index_documents.set_function(lambda: index_stats()[0])
        self.index_passages.set_function(lambda: index_stats()[1])
        self.index_generation.set_function(lambda: index_stats()[2])
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def observe_answer(self, answer: Answer) -> None:
        t = answer.timings
        self.retrieval.observe(t.retrieval_s)
        if t.ttft_s is not None:
            self.ttft.observe(t.ttft_s)
        if t.generation_s:
            self.generation.observe(t.generation_s)
        if t.tokens_per_s:
            self.tokens_per_s.observe(t.tokens_per_s)
        if t.completion_tokens:
            self.completion_tokens.inc(t.completion_tokens)
        # "quoted": the model was the caller's choice and was not used (extractive mode asked for quotes)
        bypassed = answer.written_by == "quotes" and answer.quoted_because != "extractive_mode"
        outcome = "abstained" if answer.abstained else ("quoted" if bypassed else "answered")
        self.answers.labels(answer.mode, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every request by its route template (never the raw path, which would explode label counts)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
