"""Admission by request class (api/admission.py and the model queue's per-class rules): first come first served,
refusal at arrival when the line is full or the expected wait passes the deadline, a waiter let go at its
deadline, classes bounded apart from each other, and every refusal and wait counted in /metrics."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.admission import Admission, Lane, LaneLimits, cpu_pool_size
from api.metrics import Metrics
from api.queue import GenerationQueue
from rag.core.errors import BusyError
from rag.core.settings import Settings
from tests.unit.api.test_queue import WAIT_S, Turnstile, wait_for


class Recorder:
    def __init__(self) -> None:
        self.refusals: list[tuple[str, str]] = []
        self.waits: list[tuple[str, float]] = []

    def refused(self, klass: str, reason: str) -> None:
        self.refusals.append((klass, reason))

    def waited(self, klass: str, seconds: float) -> None:
        self.waits.append((klass, seconds))


def lane(
    limit: int = 1, max_waiting: int = 8, deadline_s: float = 30.0, hold_s: float = 0.01, timeout_s: float = 60.0
) -> tuple[Lane, Recorder]:
    seen = Recorder()
    return Lane("search", LaneLimits(limit, max_waiting, deadline_s, timeout_s), seen, initial_hold_s=hold_s), seen


def test_waiters_get_the_slot_in_arrival_order():
    async def scenario() -> list[int]:
        line, seen = lane()
        holder = line.reserve()
        order: list[int] = []

        async def wait(i: int) -> None:
            place = waiting[i]
            await place.ready()
            order.append(i)
            place.release()

        waiting = [line.reserve() for _ in range(6)]
        assert line.waiting == 6 and line.running == 1
        tasks = [asyncio.create_task(wait(i)) for i in reversed(range(6))]  # awaited in the opposite order
        await asyncio.sleep(0)
        holder.release()
        await asyncio.gather(*tasks)
        assert line.running == 0 and line.waiting == 0
        assert [k for k, _ in seen.waits] == ["search"] * 7  # the holder (no wait) and each waiter
        return order

    assert asyncio.run(scenario()) == list(range(6))


def test_a_full_line_refuses_at_once_with_retry_after():
    async def scenario() -> None:
        line, seen = lane(max_waiting=2)
        line.reserve()
        line.reserve()
        line.reserve()
        with pytest.raises(BusyError, match="RAG_ADMISSION_QUEUES") as caught:
            line.reserve()  # raises here, on arrival: nothing was awaited
        assert getattr(caught.value, "retry_after", 0) >= 1
        assert seen.refusals == [("search", "full")] and line.waiting == 2

    asyncio.run(scenario())


def test_an_expected_wait_past_the_deadline_refuses_at_once():
    async def scenario() -> None:
        line, seen = lane(limit=2, deadline_s=1.0, hold_s=0.8)  # a slot frees every 0.4 s on average
        line.reserve()
        line.reserve()
        line.reserve()  # next in line: ~0.4 s
        line.reserve()  # ~0.8 s
        with pytest.raises(BusyError, match="RAG_ADMISSION_DEADLINES_S"):
            line.reserve()  # ~1.2 s > 1.0
        assert seen.refusals == [("search", "deadline")] and line.waiting == 2

    asyncio.run(scenario())


def test_a_waiter_still_waiting_at_the_stall_timeout_is_refused_and_leaves_the_line():
    async def scenario() -> None:
        line, seen = lane(timeout_s=0.05)
        holder = line.reserve()  # never released while the waiter waits
        place = line.reserve()
        with pytest.raises(BusyError):
            await place.ready()
        assert seen.refusals == [("search", "expired")] and line.waiting == 0
        holder.release()
        assert line.running == 0  # the slot went back, not to the departed waiter

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_up_its_place():
    async def scenario() -> None:
        line, _ = lane()
        holder = line.reserve()
        gone, kept = line.reserve(), line.reserve()
        task = asyncio.create_task(gone.ready())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert line.waiting == 1
        holder.release()
        await kept.ready()  # the slot skipped the departed waiter
        kept.release()
        assert line.running == 0 and line.waiting == 0

    asyncio.run(scenario())


def test_classes_are_bounded_apart_and_refusals_reach_metrics(settings):
    metrics = Metrics()
    s = settings.model_copy(
        update={
            "cpu_threads": 2,
            "admission_limits": {**settings.admission_limits, "search": 1},
            "admission_queues": {**settings.admission_queues, "search": 1},
        }
    )
    admission = Admission(s, metrics)
    release = threading.Event()

    async def scenario() -> tuple[list[object], str]:
        first = asyncio.create_task(admission.run("search", release.wait, WAIT_S))
        await asyncio.sleep(0)
        second = asyncio.create_task(admission.run("search", lambda: "second"))
        await asyncio.sleep(0)
        with pytest.raises(BusyError):
            await admission.run("search", lambda: "third")  # one running, one waiting: full
        other = await admission.run("extractive", lambda: "extractive ran")  # its own lane, a free pool thread
        release.set()
        return list(await asyncio.gather(first, second)), other

    try:
        done, other = asyncio.run(scenario())
    finally:
        admission.shutdown()
    assert done == [True, "second"] and other == "extractive ran"
    value = metrics.registry.get_sample_value
    assert value("rag_admission_rejected_total", {"class": "search", "reason": "full"}) == 1.0
    assert value("rag_admission_wait_seconds_count", {"class": "search"}) == 2.0
    assert value("rag_admission_wait_seconds_count", {"class": "extractive"}) == 1.0


def test_the_cpu_pool_gets_the_cores_llama_cpp_leaves():
    base = Settings(_env_file=None, n_threads=2)
    assert cpu_pool_size(base, cpu_count=2) == 1  # never zero: cheap requests must still run
    assert cpu_pool_size(base, cpu_count=8) == 6
    assert cpu_pool_size(base.model_copy(update={"cpu_threads": 3}), cpu_count=2) == 3
    assert (
        cpu_pool_size(base.model_copy(update={"generator_backend": "openai"}), cpu_count=4) == 4
    )  # the model runs elsewhere


def test_model_classes_have_their_own_limits_and_deadlines():
    seen = Recorder()
    queue = GenerationQueue(
        max_waiting=8, timeout_s=60, limits={"stream": 1}, deadlines_s={"generate": 0.01, "stream": 60.0}, observer=seen
    )
    model = Turnstile()

    def hold(name: str, ticket, results: dict, at_least_s: float = 0.0) -> threading.Thread:
        thread = threading.Thread(target=lambda: run_holding(queue, model, ticket, results, name), daemon=True)
        thread.start()
        wait_for(lambda: model.order[-1:] == [name], f"{name} to hold the model")
        time.sleep(at_least_s)  # a floor on the measured answer time, not a measurement
        return thread

    results: dict = {}
    first = hold("first", queue.admit("stream"), results)
    # Nothing measured yet: the gate's guess of an answer's length refuses nobody.
    unmeasured = queue.admit("generate")
    unmeasured.release()
    model.turns.release()
    first.join(WAIT_S)

    measured = hold("measured", queue.admit("stream"), results, at_least_s=0.2)
    model.turns.release()
    measured.join(WAIT_S)  # one answer of >= 0.2 s is now the estimate

    holder = hold("holder", queue.admit("stream"), results)
    with pytest.raises(BusyError, match="RAG_ADMISSION_LIMITS"):
        queue.admit("stream")  # its class is at its limit of 1
    with pytest.raises(BusyError, match="deadline"):
        queue.admit("generate")  # at least a quarter of a 0.2 s answer is left: past generate's 0.01 s
    assert seen.refusals == [("stream", "full"), ("generate", "deadline")]
    assert [k for k, _ in seen.waits] == ["stream", "stream", "stream"]
    model.turns.release()
    holder.join(WAIT_S)
    assert results == {"first": "done", "measured": "done", "holder": "done"} and queue.in_flight == 0


def run_holding(queue: GenerationQueue, model: Turnstile, ticket, results: dict, name: str) -> None:
    queue.bind_thread(None, ticket)
    try:
        results[name] = "".join(
            queue.gate(model).stream([{"role": "user", "content": name}], max_tokens=1, temperature=0.0)
        )
    finally:
        queue.bind_thread(None)
        ticket.release()


def test_admission_settings_merge_over_the_defaults_and_refuse_unknown_classes():
    s = Settings(_env_file=None, admission_deadlines_s={"search": 2.5})
    assert s.admission_deadlines_s["search"] == 2.5 and s.admission_deadlines_s["generate"] == 4.0
    with pytest.raises(ValueError, match="unknown request class"):
        Settings(_env_file=None, admission_queues={"everything": 3})
