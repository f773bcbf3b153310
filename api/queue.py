"""Bounded admission to the model, and the gate that lets `slots` answers at it at once.

The model writes at most RAG_MODEL_SLOTS answers at a time (decoded together, rag/models/llama_batching.py), so piling
more requests up only makes every one of them slow. A request that needs the model (class "generate" or
"stream") is admitted only when its class has fewer than its limit in flight, fewer than `max_waiting`
requests are ahead of it for the model, and a slot is expected to be free for it within its class's deadline
(none while one is free; else what the answer nearest its end has left, plus one average answer per
`slots` requests ahead that will use the model). Otherwise BusyError (503 + Retry-After) at once, instead of
a timeout a minute later. Admitted requests retrieve in their own worker thread; only the generator's
`stream()` passes through the gate, which lets them through in the order they reached it, streamed asks
ahead of generated ones (PRIORITY_CLASSES, with a bound). Once admitted a request is served, unless it waits
past `timeout_s` (RAG_QUEUE_TIMEOUT_S): its retrieval is already paid for.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from api.admission import AdmissionObserver, NullObserver
from rag.core.errors import BusyError
from rag.models.generator import Generator, Message, Usage

StopCheck = Callable[[], bool]
POLL_S = 0.05  # how often a waiting request checks whether its client went away
# Streamed asks take the model ahead of generated ones: a reader watching for the first token waits actively,
# while a generated answer arrives whole and its client waits for all of it anyway. Behind streams a generated
# ask is passed over at most MAX_BYPASS times, so a steady run of streams cannot starve it.
PRIORITY_CLASSES = frozenset({"stream"})
MAX_BYPASS = 2
USE_EWMA = 0.1  # weight of the newest request in the share of admitted requests that end up using the model


class _Waiter:
    """A request in line for the model: set when the model is handed to it."""

    def __init__(self, klass: str) -> None:
        self.turn = threading.Event()
        self.klass = klass
        self.priority = klass in PRIORITY_CLASSES
        self.bypassed = 0
        self.thread = threading.get_ident()  # made by the thread that waits


class Ticket:
    """One admitted request; releasing twice is harmless, so both the thread and the coroutine may."""

    def __init__(self, queue: GenerationQueue, klass: str):
        self._queue = queue
        self.klass = klass
        self.arrived = time.monotonic()
        self.state = "pending"  # -> "holding" the model -> "done" with it; some never use it (abstained, quoted)
        self._released = False

    def release(self) -> None:
        q = self._queue
        with q._state:
            if not self._released:
                self._released = True
                q._admitted -= 1
                q._tickets.discard(self)
                q._use_rate = (1 - USE_EWMA) * q._use_rate + USE_EWMA * (self.state != "pending")


class GenerationQueue:
    """`slots` requests hold the model at once (RAG_MODEL_SLOTS: answers decoded together); the rest wait."""

    def __init__(
        self,
        max_waiting: int,
        timeout_s: float,
        *,
        limits: dict[str, int] | None = None,
        deadlines_s: dict[str, float] | None = None,
        observer: AdmissionObserver | None = None,
        slots: int = 1,
    ):
        self.max_waiting = max_waiting
        self.slots = slots
        self.timeout_s = timeout_s
        self.limits = limits or {}  # per class; a class not named is bounded by max_waiting alone
        self.deadlines_s = deadlines_s or {}  # per class; not named: no deadline
        self.observer = observer or NullObserver()
        self._state = threading.Lock()  # guards everything below
        # The model is handed from one request to the next in arrival order. A plain Lock polled with a
        # timeout wakes whichever waiter the OS picks: 8 staggered requests were served 0,1,3,2,5,4,6,7.
        self._holds: dict[int, float] = {}  # worker thread -> when it took the model; at most `slots`
        self._waiters: deque[_Waiter] = deque()  # in arrival order; the releaser hands the model over (_next_waiter)
        self._admitted = 0
        self._running = 0
        self._tickets: set[Ticket] = set()  # admitted and not yet released
        self._busy_since = 0.0  # when the model last went from idle to in use
        self._avg_hold_s = 5.0  # running estimate of one generation, for admission and Retry-After
        self._measured = False  # no answer timed yet: the 5 s above is a guess, too weak to refuse anyone on
        self._held_total_s = 0.0  # time the model has been held, for /metrics (how much of the time it works)
        self._use_rate = 1.0  # share of admitted requests that use the model: abstentions and quotes do not
        self._local = threading.local()
        # Seconds of prompt reading ahead of a newcomer, from a generator that decodes answers together
        # (rag/models/llama_batching.py): with slots, a free one does not mean a quick first token.
        self._backlog: Callable[[bool, float], float] | None = None

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

    @property
    def busy_seconds(self) -> float:
        """Time the model has been held so far, the running answer included."""
        running = time.monotonic() - self._busy_since if self._holds else 0.0
        return self._held_total_s + running

    def admitted(self, klass: str) -> int:
        return sum(t.klass == klass for t in list(self._tickets))

    def pending(self, klass: str | None = None) -> int:
        """Admitted requests of `klass` (or any) that have not had the model yet: retrieving or in line."""
        return sum(t.state == "pending" and (klass is None or t.klass == klass) for t in list(self._tickets))

    def retry_after_s(self) -> int:
        return max(1, min(120, math.ceil(self._avg_hold_s * (self.depth + 1))))

    def _left_s(self) -> float:
        """Until a slot frees: none while one is free, else what the answer nearest its end has left. An answer
        past the average still has some way to go: a quarter of one is a guess that errs long."""
        if len(self._holds) < self.slots:
            return 0.0
        now = time.monotonic()
        return min(max(self._avg_hold_s - (now - since), 0.25 * self._avg_hold_s) for since in self._holds.values())

    def estimated_wait_s(self, klass: str = "generate") -> float:
        """When the model would be free for a request of `klass` admitted now: a streamed ask waits for the
        streams ahead of it only (PRIORITY_CLASSES). Call with _state held."""
        if not self._measured:
            return 0.0
        ahead = self.pending("stream") if klass in PRIORITY_CLASSES else self.pending()
        # Those ahead take the free slots first; past them, a newcomer waits for enough answers to end, and
        # `slots` answers running side by side end one every avg/slots on average.
        queued, free = ahead * self._use_rate, self.slots - len(self._holds)
        reading = (
            self._backlog(klass in PRIORITY_CLASSES, min(queued, max(free, 0)))
            if self._backlog is not None and self.slots > 1
            else 0.0
        )
        if queued < free:
            return reading
        releases = queued - free + 1
        if free > 0:
            return reading + releases * self._avg_hold_s / self.slots
        return reading + self._left_s() + (releases - 1) * self._avg_hold_s / self.slots

    def admit(self, klass: str = "generate") -> Ticket:
        with self._state:
            # max_waiting in line behind the one generating, as before per-class limits; both count requests
            # still retrieving, which will be in line by the time the model frees.
            # Retry-After: when a place is likely to free (the running answer ends), or when the expected wait will
            # have come down to the deadline. A longer hint only leaves the model idle while clients sleep.
            if self._admitted >= self.max_waiting + 1 or self.admitted(klass) >= self.limits.get(
                klass, self.max_waiting + 1
            ):
                reason, why = (
                    "full",
                    f"{self._admitted} request(s) already in flight (RAG_QUEUE_MAX, RAG_ADMISSION_LIMITS)",
                )
                retry = self._left_s()
            elif (wait := self.estimated_wait_s(klass)) > (deadline := self.deadlines_s.get(klass, math.inf)):
                reason, why = (
                    "deadline",
                    f"expected free in {wait:.1f}s, past the {klass} deadline of {deadline:g}s "
                    "(RAG_ADMISSION_DEADLINES_S)",
                )
                retry = wait - deadline
            else:
                self._admitted += 1
                ticket = Ticket(self, klass)
                self._tickets.add(ticket)
                return ticket
        self.observer.refused(klass, reason)
        raise BusyError(f"the model is busy: {why}; try again shortly", retry_after_s=max(1, math.ceil(retry)))

    # --- per worker thread ----------------------------------------------------------------------------------
    def bind_thread(self, should_stop: StopCheck | None, ticket: Ticket | None = None) -> None:
        """Tell the gate, for the calling worker thread, how to notice that the client left while waiting,
        and which admitted request it serves (for the wait estimate and the per-class wait times)."""
        self._local.should_stop = should_stop
        self._local.ticket = ticket
        self._local.usage = None

    def gate(self, generator: Generator) -> GatedGenerator:
        if isinstance(generator, GatedGenerator):
            return generator
        self._backlog = getattr(generator, "backlog_s", None)
        # What the generator was built to run at once wins over the setting the queue was made with: a
        # pipeline handed in ready-made (tests, benches) may have been built with other settings.
        declared = getattr(generator, "slots", None)
        if isinstance(declared, int) and declared >= 1:
            self.slots = declared
        return GatedGenerator(generator, self)

    def _acquire(self) -> bool:
        """Wait for the model, first come first served; False when the client gave up, BusyError past
        queue_timeout_s."""
        should_stop: StopCheck | None = getattr(self._local, "should_stop", None)
        ticket: Ticket | None = getattr(self._local, "ticket", None)
        deadline = time.monotonic() + self.timeout_s
        waiter = _Waiter(ticket.klass if ticket is not None else "generate")
        turn = waiter.turn
        with self._state:
            if len(self._holds) < self.slots and not self._waiters:
                self._running += 1
                self._took_model()
                return True
            self._waiters.append(waiter)
        while not turn.wait(POLL_S):
            gave_up = should_stop is not None and should_stop()
            if not gave_up and time.monotonic() <= deadline:
                continue
            with self._state:
                if not turn.is_set():  # still in line: leave it
                    self._waiters.remove(waiter)
                    if gave_up:
                        return False
                    raise BusyError(
                        f"waited {self.timeout_s:.0f}s for the model (RAG_QUEUE_TIMEOUT_S); try again shortly",
                        retry_after_s=self.retry_after_s(),
                    )
            break  # handed the model at the moment we gave up: it is ours, so use it or pass it on
        with self._state:
            self._took_model()
        if should_stop is not None and should_stop():
            self._release(0.0, record=False)
            return False
        return True

    def _took_model(self) -> None:
        """Bookkeeping once this thread holds the model. Call with _state held."""
        now = time.monotonic()
        if not self._holds:
            self._busy_since = now
        self._holds[threading.get_ident()] = now
        ticket: Ticket | None = getattr(self._local, "ticket", None)
        if ticket is not None and ticket.state == "pending" and not ticket._released:
            ticket.state = "holding"
            self.observer.waited(ticket.klass, now - ticket.arrived)

    def _release(self, held_s: float, *, record: bool = True) -> None:
        with self._state:
            ticket: Ticket | None = getattr(self._local, "ticket", None)
            if ticket is not None and ticket.state == "holding":
                ticket.state = "done"
            self._holds.pop(threading.get_ident(), None)
            if record:
                # The first measurement replaces the guess outright rather than being averaged into it.
                self._avg_hold_s = 0.8 * self._avg_hold_s + 0.2 * held_s if self._measured else held_s
                self._measured = True
            if self._waiters:
                # Handed over, never put down: a newcomer cannot slip in between release and wake-up. The
                # slot is marked taken now, so a newcomer counts it as busy until the waiter wakes.
                waiter = self._next_waiter()
                self._holds[waiter.thread] = time.monotonic()
                waiter.turn.set()
            else:
                self._running -= 1
                if not self._holds:
                    self._held_total_s += time.monotonic() - self._busy_since

    def _next_waiter(self) -> _Waiter:
        """The first streamed ask in line, unless a request ahead of it has been passed over MAX_BYPASS times
        already; else the first in line. Call with _state held and a non-empty line."""
        for position, waiter in enumerate(self._waiters):
            if waiter.priority:
                passed = list(self._waiters)[:position]
                if any(w.bypassed >= MAX_BYPASS for w in passed):
                    break
                for w in passed:
                    w.bypassed += 1
                del self._waiters[position]
                return waiter
        return self._waiters.popleft()


class GatedGenerator:
    """Wraps a Generator so at most `slots` streams run at once, and gives each thread its own `usage`.

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

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        priority: bool = False,
    ) -> Iterator[str]:
        if not self.queue._acquire():
            return  # the client is gone; an empty reply ends the pipeline quickly
        started = time.monotonic()
        ticket: Ticket | None = getattr(self.queue._local, "ticket", None)
        priority = priority or (ticket is not None and ticket.klass in PRIORITY_CLASSES)
        inner = self.inner.stream(
            messages, max_tokens=max_tokens, temperature=temperature, stop=stop, priority=priority
        )
        try:
            yield from inner
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()  # stops llama.cpp decoding when the consumer stopped early
            self.queue._local.usage = self.inner.usage.model_copy()
            self.queue._release(time.monotonic() - started)
