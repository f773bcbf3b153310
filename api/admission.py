"""Admission for the requests that need only the CPU (search, extractive answers, uploads), and the pool they run in.

Each request class has a lane: at most `limit` of its requests hold a slot at once, at most `max_waiting` wait
for one, first come first served. The decision to refuse is taken when the request arrives, from the lane's
measured time per slot: a request that would not start within its class's deadline gets BusyError (503 +
Retry-After) at once, instead of queueing and timing out after all its waiting. A waiter the estimate let in is
served even if the lane runs slower than measured, since refusing it then would throw its wait away; only one
still waiting at `timeout_s` (RAG_QUEUE_TIMEOUT_S, a stall) is refused ("expired").

Admitted work runs in one small pool of threads, sized to the cores llama.cpp leaves free while it generates
(Settings.cpu_threads): with Starlette's default threadpool of 40, 32 clients' embeddings ran all at once
beside llama.cpp and both cores thrashed. Requests for the model (api/queue.py) do their own CPU work in their
own thread, which the model classes' limits bound.

Lanes live on the event loop: reserve() and release run there, so they need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from rag.core.errors import BusyError
from rag.core.settings import Settings

T = TypeVar("T")

CPU_CLASSES = ("search", "extractive", "upload")
MODEL_CLASSES = ("generate", "stream")
EWMA = 0.2  # weight of the newest observation in a lane's running time per slot


class AdmissionObserver(Protocol):
    """Where lanes report (api/metrics.py): rejections by class and reason, and how long admitted requests waited."""

    def refused(self, klass: str, reason: str) -> None: ...

    def waited(self, klass: str, seconds: float) -> None: ...


class NullObserver:
    def refused(self, klass: str, reason: str) -> None:
        pass

    def waited(self, klass: str, seconds: float) -> None:
        pass


def busy(message: str, retry_after_s: float) -> BusyError:
    return BusyError(message, retry_after_s=max(1, min(120, math.ceil(retry_after_s))))


@dataclass(frozen=True)
class LaneLimits:
    limit: int
    max_waiting: int
    deadline_s: float  # refuse on arrival when the expected wait is longer
    timeout_s: float = 60.0  # refuse an admitted waiter still waiting this long


class Pass:
    """A place in a lane: granted at once, or a waiter that `ready()` awaits. `release()` is idempotent."""

    def __init__(self, lane: Lane, arrived: float, turn: asyncio.Future[None] | None):
        self._lane = lane
        self.arrived = arrived
        self._turn = turn  # None: the slot was free on arrival
        self._granted_at: float | None = arrived if turn is None else None
        self._released = False

    async def ready(self) -> None:
        """Wait for the slot, at most `timeout_s`; BusyError then. Cancelled: leaves the line."""
        if self._turn is None:
            return
        lane, turn = self._lane, self._turn
        remaining = lane.limits.timeout_s - (time.monotonic() - self.arrived)
        try:
            await asyncio.wait({turn}, timeout=max(0.0, remaining))
        except asyncio.CancelledError:
            self._leave_line()
            raise
        if not turn.done():  # the lane stalled: the estimate was far off
            self._leave_line()
            lane.observer.refused(lane.name, "expired")
            raise busy(
                f"no {lane.name} slot within {lane.limits.timeout_s:g}s (RAG_QUEUE_TIMEOUT_S); try again shortly",
                lane.retry_after_s(),
            )
        self._turn = None
        self._granted_at = time.monotonic()
        lane.observer.waited(lane.name, self._granted_at - self.arrived)

    def _leave_line(self) -> None:
        turn, self._turn, self._released = self._turn, None, True
        assert turn is not None
        if turn.done():  # handed the slot just as we gave up: pass it on, unmeasured
            self._lane._hand_on(None)
        else:
            turn.cancel()
            self._lane._waiters.remove(turn)

    def release(self) -> None:
        if self._released:
            return
        if self._turn is not None:  # never got its turn (the response ended first)
            self._leave_line()
            return
        self._released = True
        self._lane._hand_on(time.monotonic() - (self._granted_at or self.arrived))


class Lane:
    def __init__(self, name: str, limits: LaneLimits, observer: AdmissionObserver, initial_hold_s: float = 0.1):
        self.name = name
        self.limits = limits
        self.observer = observer
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._avg_hold_s = initial_hold_s

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def estimated_wait_s(self, position: int) -> float:
        """Time until the waiter at `position` (0 = next) gets a slot: slots free every hold/limit on average."""
        return (position + 1) * self._avg_hold_s / self.limits.limit

    def retry_after_s(self) -> float:
        """When a request refused now would be let in: the line moves up one place every hold/limit, and a refusal
        for the deadline needs the expected wait to come down by the excess. A longer hint only idles clients."""
        excess = self.estimated_wait_s(self.waiting) - self.limits.deadline_s
        return max(self._avg_hold_s / self.limits.limit, excess)

    def reserve(self) -> Pass:
        """A slot now, a place in line, or BusyError at once. Call on the event loop."""
        now = time.monotonic()
        if self.running < self.limits.limit and not self._waiters:
            self.running += 1
            self.observer.waited(self.name, 0.0)
            return Pass(self, now, None)
        position = len(self._waiters)
        if position >= self.limits.max_waiting:
            self.observer.refused(self.name, "full")
            raise busy(
                f"{self.name} is busy: {position} request(s) already waiting (RAG_ADMISSION_QUEUES); try again shortly",
                self.retry_after_s(),
            )
        if self.estimated_wait_s(position) > self.limits.deadline_s:
            self.observer.refused(self.name, "deadline")
            raise busy(
                f"{self.name} is busy: no slot expected within {self.limits.deadline_s:g}s "
                "(RAG_ADMISSION_DEADLINES_S); try again shortly",
                self.retry_after_s(),
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        return Pass(self, now, turn)

    def _hand_on(self, held_s: float | None) -> None:
        if held_s is not None:
            self._avg_hold_s = (1 - EWMA) * self._avg_hold_s + EWMA * held_s
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes straight to the next in line: nobody can cut in
                return
        self.running -= 1


def cpu_pool_size(settings: Settings, cpu_count: int | None = None) -> int:
    """Settings.cpu_threads, else the cores llama.cpp's threads leave free, at least one."""
    if settings.cpu_threads is not None:
        return settings.cpu_threads
    cores = cpu_count or os.cpu_count() or 1
    leaves = cores - settings.n_threads if settings.generator_backend == "llama_cpp" else cores
    return max(1, leaves)


def lane_limits(settings: Settings, pool_size: int) -> dict[str, LaneLimits]:
    out = {}
    for klass in CPU_CLASSES:
        limit = settings.admission_limits.get(klass) or pool_size  # unset: as many as the pool has threads
        out[klass] = LaneLimits(
            limit, settings.admission_queues[klass], settings.admission_deadlines_s[klass], settings.queue_timeout_s
        )
    return out


def lower_priority(nice: int) -> None:
    """Give the calling thread a lower CPU priority (Linux threads each have their own nice value).

    When the cores are oversubscribed, the scheduler then favours llama.cpp's threads, whose barrier after each
    layer waits for the slowest of them, and the event loop, which answers refusals; the pool's searches still
    get every cycle nobody else wants. Lowering one's own priority needs no privilege."""
    if nice and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the app is gone, and its lanes with it
        loop.call_soon_threadsafe(fn)


class Admission:
    """The CPU lanes and their pool, one per app."""

    def __init__(self, settings: Settings, observer: AdmissionObserver | None = None, cpu_count: int | None = None):
        self.observer = observer or NullObserver()
        self.pool_size = cpu_pool_size(settings, cpu_count)
        self.nice = settings.cpu_nice
        self.lanes = {k: Lane(k, v, self.observer) for k, v in lane_limits(settings, self.pool_size).items()}
        self._pool: ThreadPoolExecutor | None = None
        # Requests for the model retrieve, wait for it and generate in threads of their own, as many as their
        # classes may have in flight; llama.cpp decodes on the calling thread (and its helpers inherit its priority).
        self.model_workers = sum(settings.admission_limits.get(k) or settings.queue_max + 1 for k in MODEL_CLASSES)
        self._model_pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        # Created on first use: an app that is built and never serves starts no threads.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.pool_size, thread_name_prefix="rag-cpu", initializer=lower_priority, initargs=(self.nice,)
            )
        return self._pool

    async def run_model(self, fn: Callable[..., T], *args: object) -> T:
        """Run a request that the model queue admitted. Its threads sit one step below the event loop, so the loop
        (which answers refusals in milliseconds) goes first when the cores are short, and one step above the pool."""
        if self._model_pool is None:
            self._model_pool = ThreadPoolExecutor(
                self.model_workers,
                thread_name_prefix="rag-model",
                initializer=lower_priority,
                initargs=(min(1, self.nice),),
            )
        return await asyncio.get_running_loop().run_in_executor(self._model_pool, partial(fn, *args))

    def reserve(self, klass: str) -> Pass:
        return self.lanes[klass].reserve()

    async def run(self, klass: str, fn: Callable[..., T], *args: object) -> T:
        """Admit (or refuse at once), wait for the slot, run `fn` in the pool."""
        return await self.run_reserved(self.reserve(klass), fn, *args)

    async def run_reserved(self, place: Pass, fn: Callable[..., T], *args: object) -> T:
        try:
            await place.ready()
        except BaseException:
            place.release()
            raise
        loop = asyncio.get_running_loop()
        future = self.pool.submit(partial(fn, *args))
        # The slot is freed when the thread is done, not when the awaiting coroutine is: a request whose client
        # left must not free its slot while its work still occupies a core.
        future.add_done_callback(lambda _: _call_soon(loop, place.release))
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        for pool in (self._pool, self._model_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._model_pool = None
