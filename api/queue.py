"""Bounded admission to the one model, and the gate that serialises it.

The model is not re-entrant and a CPU decodes one answer at a time, so piling requests up only makes every
one of them slow. Requests that need the model are admitted while at most `queue_max` are waiting behind
the one generating; the next gets BusyError (503 + Retry-After) at once instead of a timeout later.
Retrieval and embedding of admitted requests still run in parallel in the threadpool: only the
generator's `stream()` passes through the gate, and it lets them through in the order they reached it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from rag.errors import BusyError
from rag.generator import Generator, Message, Usage

StopCheck = Callable[[], bool]
POLL_S = 0.05  # how often a waiting request checks whether its client went away


class Ticket:
    """One admitted request; releasing twice is harmless, so both the thread and the coroutine may."""

    def __init__(self, queue: GenerationQueue):
        self._queue = queue
        self._released = False

    def release(self) -> None:
        with self._queue._state:
            if not self._released:
                self._released = True
                self._queue._admitted -= 1


class GenerationQueue:
    def __init__(self, max_waiting: int, timeout_s: float):
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self._state = threading.Lock()  # guards everything below
        # The model is handed from one request to the next in arrival order. A plain Lock polled with a
        # timeout wakes whichever waiter the OS picks: 8 staggered requests were served 0,1,3,2,5,4,6,7.
        self._model_busy = False
        self._waiters: deque[threading.Event] = deque()  # set by the releaser when it hands the model over
        self._admitted = 0
        self._running = 0
        self._avg_hold_s = 5.0  # running estimate of one generation, for Retry-After
        self._local = threading.local()

    # --- admission (event loop) -----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._admitted

    @property
    def waiting(self) -> int:
        """Requests at the model's door, in line behind the one generating."""
        return len(self._waiters)

    @property
    def depth(self) -> int:
        """Requests admitted but not holding the model: waiting for it, or still retrieving."""
        return max(0, self._admitted - self._running)

    def retry_after_s(self) -> int:
        return max(1, min(120, math.ceil(self._avg_hold_s * (self.depth + 1))))

    def admit(self) -> Ticket:
        with self._state:
            if self._admitted >= self.max_waiting + 1:
                exc = BusyError(f"the model is busy: {self.max_waiting} request(s) already waiting (RAG_QUEUE_MAX); try again shortly")
                exc.retry_after = self.retry_after_s()  # type: ignore[attr-defined]
                raise exc
            self._admitted += 1
            return Ticket(self)

    # --- per worker thread ----------------------------------------------------------------------------------
    def bind_thread(self, should_stop: StopCheck | None) -> None:
        """Tell the gate, for the calling worker thread, how to notice that the client left while waiting."""
        self._local.should_stop = should_stop
        self._local.usage = None

    def gate(self, generator: Generator) -> GatedGenerator:
        return generator if isinstance(generator, GatedGenerator) else GatedGenerator(generator, self)

    def _acquire(self) -> bool:
        """Wait for the model, first come first served; False when the client gave up, BusyError past
        queue_timeout_s."""
        should_stop: StopCheck | None = getattr(self._local, "should_stop", None)
        deadline = time.monotonic() + self.timeout_s
        turn = threading.Event()
        with self._state:
            if not self._model_busy and not self._waiters:
                self._model_busy = True
                self._running += 1
                return True
            self._waiters.append(turn)
        while not turn.wait(POLL_S):
            gave_up = should_stop is not None and should_stop()
            if not gave_up and time.monotonic() <= deadline:
                continue
            with self._state:
                if not turn.is_set():  # still in line: leave it
                    self._waiters.remove(turn)
                    if gave_up:
                        return False
                    exc = BusyError(f"waited {self.timeout_s:.0f}s for the model (RAG_QUEUE_TIMEOUT_S); try again shortly")
                    exc.retry_after = self.retry_after_s()  # type: ignore[attr-defined]
                    raise exc
            break  # handed the model at the moment we gave up: it is ours, so use it or pass it on
        if should_stop is not None and should_stop():
            self._release(0.0, record=False)
            return False
        return True

    def _release(self, held_s: float, *, record: bool = True) -> None:
        with self._state:
            if record:
                self._avg_hold_s = 0.8 * self._avg_hold_s + 0.2 * held_s
            if self._waiters:
                # Handed over, never put down: a newcomer cannot slip in between release and wake-up.
                self._waiters.popleft().set()
            else:
                self._running -= 1
                self._model_busy = False


class GatedGenerator:
    """Wraps a Generator so only one stream runs at a time, and gives each thread its own `usage`.

    Pipeline reads `generator.usage` after the stream ends; with one shared generator a second request
    could overwrite it in between, so usage is kept per worker thread.
    """

    def __init__(self, inner: Generator, queue: GenerationQueue):
        self.inner = inner
        self.queue = queue
        self.name = inner.name

    @property
    def usage(self) -> Usage:
        local = getattr(self.queue._local, "usage", None)
        return local if local is not None else self.inner.usage

    @usage.setter
    def usage(self, value: Usage) -> None:
        self.queue._local.usage = value

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]:
        if not self.queue._acquire():
            return  # the client is gone; an empty reply ends the pipeline quickly
        started = time.monotonic()
        inner = self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        try:
            yield from inner
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()  # stops llama.cpp decoding when the consumer stopped early
            self.queue._local.usage = self.inner.usage.model_copy()
            self.queue._release(time.monotonic() - started)
