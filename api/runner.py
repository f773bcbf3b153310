"""Running Pipeline.ask for a request: checks first, admission, a worker thread, tokens back to the loop.

Both /v1/ask and /v1/chat/completions answer through an AskJob, so admission, disconnect handling and
metrics behave the same on both. A question that needs the model is admitted by the model queue (class
"generate" or "stream") and answered in its own thread; one that only quotes ("extractive") waits in its
lane and runs in the CPU pool (api/admission.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Request

from api.admission import Pass
from api.deps import Runtime
from api.queue import Ticket
from rag.answer.pipeline import Pipeline, TokenSink, check_request
from rag.core.types import Answer, ChatTurn

EventKind = Literal["token", "answer", "error"]
DISCONNECT_POLL_S = 0.25


@dataclass
class AskParams:
    question: str
    mode: str | None = None
    top_k: int | None = None
    since: str | None = None
    until: str | None = None
    as_of: str | None = None
    history: list[ChatTurn] = field(default_factory=list)


def check_params(pipeline: Pipeline, p: AskParams) -> None:
    """The core's own checks, run before anything starts: once SSE headers are out an error is only an event.
    The same function the CLI calls, so a request the core refuses is refused here too (since after until)."""
    check_request(
        pipeline.settings, p.question, mode=p.mode, top_k=p.top_k, since=p.since, until=p.until, as_of=p.as_of
    )


def needs_model(pipeline: Pipeline, p: AskParams) -> bool:
    # Extractive answers only quote; they need the model just to rewrite a follow-up question.
    mode = p.mode or pipeline.settings.mode
    rewrites = bool(p.history) and pipeline.settings.rewrite_with_model
    return pipeline.generator is not None and (mode == "generate" or rewrites)


def request_class(pipeline: Pipeline, p: AskParams, *, stream: bool) -> str:
    if needs_model(pipeline, p):
        return "stream" if stream else "generate"
    return "extractive"  # streamed or not: it only quotes, so it is CPU work like a search


async def watch_disconnect(request: Request, stop: threading.Event) -> None:
    while not stop.is_set():
        if await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


class AskJob:
    """One question: validated and admitted on creation (so 400/503 come as plain responses), run later."""

    def __init__(self, runtime: Runtime, pipeline: Pipeline, params: AskParams, *, stream: bool = False):
        check_params(pipeline, params)
        self.runtime = runtime
        self.pipeline = pipeline
        self.params = params
        self.stop = threading.Event()
        self.started = False
        self.klass = request_class(pipeline, params, stream=stream)
        self.ticket: Ticket | None = None
        self.place: Pass | None = None  # in the CPU lane; freed by the pool when the work ends
        if self.klass == "extractive":
            self.place = runtime.admission.reserve(self.klass)
        else:
            self.ticket = runtime.queue.admit(self.klass)

    def _work(self, on_token: TokenSink | None) -> Answer:
        queue = self.runtime.queue
        queue.bind_thread(self.stop.is_set, self.ticket)
        p = self.params
        try:
            return self.pipeline.ask(
                p.question,
                mode=p.mode,
                top_k=p.top_k,
                since=p.since,
                until=p.until,
                as_of=p.as_of,
                history=p.history,  # type: ignore[arg-type]
                on_token=on_token,
                should_stop=self.stop.is_set,
            )
        finally:
            queue.bind_thread(None)
            self.release()  # the model is free now, not when the coroutine gets around to it

    def release(self) -> None:
        if self.ticket is not None:
            self.ticket.release()

    def release_if_never_started(self) -> None:
        """For a response that ended before its stream began (client gone at once): free the queue slot."""
        if not self.started:
            self.release()
            if self.place is not None:
                self.place.release()  # never handed to the pool, so nothing else will

    async def run(self, request: Request) -> Answer:
        """Answer in a worker thread; a client that hangs up stops generation at the next token."""
        watcher = asyncio.create_task(watch_disconnect(request, self.stop))
        try:
            if self.place is not None:
                answer = await self.runtime.admission.run_reserved(self.place, self._work, None)
            else:
                answer = await self.runtime.admission.run_model(self._work, None)
        finally:
            watcher.cancel()
            self.release()
        self.runtime.metrics.observe_answer(answer)
        return answer

    async def events(self) -> AsyncIterator[tuple[EventKind, Any]]:
        """("token", str)... then ("answer", Answer) or ("error", exception). Closing the iterator (the SSE
        response does when the client goes away) sets the stop flag the pipeline checks after each token."""
        self.started = True
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[EventKind, Any]] = asyncio.Queue()

        def post(kind: EventKind, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
                loop.call_soon_threadsafe(inbox.put_nowait, (kind, value))

        def work() -> None:
            try:
                post("answer", self._work(lambda piece: post("token", piece)))
            except Exception as exc:
                post("error", exc)

        async def drive() -> None:
            try:
                if self.place is not None:
                    await self.runtime.admission.run_reserved(self.place, work)
                else:
                    await self.runtime.admission.run_model(work)
            except Exception as exc:
                post("error", exc)

        task = asyncio.ensure_future(drive())
        self.runtime.background.add(task)
        task.add_done_callback(self.runtime.background.discard)
        try:
            while True:
                kind, value = await inbox.get()
                if kind == "answer":
                    self.runtime.metrics.observe_answer(value)
                yield kind, value
                if kind != "token":
                    return
        finally:
            self.stop.set()
