"""The model gate serves waiting requests first come, first served (#17 item 9), and still times out and
lets a departed client's place go. Threads and a generator that holds the model until the test lets go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from api.queue import GenerationQueue
from rag.core.errors import BusyError
from rag.models.generator import Usage

WAIT_S = 20  # how long a helper waits for a state the test expects; never what a test measures
# Arrivals spaced off the gate's 50 ms poll, as real requests are: waiters that poll a lock re-queue each
# poll, so their places drift out of arrival order (issue #17 saw 0,1,3,2,5,4,6,7).
STAGGER_S = 0.037


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


class Turnstile:
    """A generator that records who got the model, then holds it until the test releases one turn."""

    name = "turnstile"

    def __init__(self) -> None:
        self.order: list[str] = []
        self.turns = threading.Semaphore(0)
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self, messages, *, max_tokens: int, temperature: float, stop=None, priority: bool = False
    ) -> Iterator[str]:
        self.order.append(messages[0]["content"])
        assert self.turns.acquire(timeout=WAIT_S)
        yield "done"


def ask(
    queue: GenerationQueue,
    generator,
    name: str,
    results: dict,
    should_stop: Callable[[], bool] | None = None,
    klass: str = "generate",
) -> threading.Thread:
    ticket = queue.admit(klass)

    def run() -> None:
        queue.bind_thread(should_stop, ticket)
        try:
            results[name] = "".join(
                queue.gate(generator).stream([{"role": "user", "content": name}], max_tokens=1, temperature=0.0)
            )
        except BusyError as exc:
            results[name] = exc
        finally:
            ticket.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_staggered_requests_get_the_model_in_arrival_order():
    queue, model, results = GenerationQueue(max_waiting=8, timeout_s=60), Turnstile(), {}
    threads = [ask(queue, model, "0", results)]
    wait_for(lambda: model.order == ["0"], "the first request to hold the model")
    for i in range(1, 8):
        threads.append(ask(queue, model, str(i), results))
        wait_for(lambda i=i: queue.depth == i, f"request {i} to wait")  # staggered: each arrives after the last waits
        time.sleep(STAGGER_S)
    for _ in range(8):
        model.turns.release()
    for thread in threads:
        thread.join(WAIT_S)
    assert model.order == [str(i) for i in range(8)]
    assert results == {str(i): "done" for i in range(8)} and queue.in_flight == 0 and queue.depth == 0


def test_a_waiter_that_times_out_or_whose_client_left_gives_its_place_to_the_next():
    queue, model, results = GenerationQueue(max_waiting=8, timeout_s=60), Turnstile(), {}
    left = threading.Event()
    first = ask(queue, model, "first", results)
    wait_for(lambda: model.order == ["first"], "the first request to hold the model")
    gone = ask(queue, model, "gone", results, should_stop=left.is_set)
    wait_for(lambda: queue.waiting == 1, "the second request to wait")
    last = ask(queue, model, "last", results)
    wait_for(lambda: queue.waiting == 2, "the third request to wait")
    left.set()
    wait_for(lambda: "gone" in results, "the departed client's request to end")
    assert results["gone"] == "" and queue.waiting == 1
    model.turns.release()
    model.turns.release()
    for thread in (first, gone, last):
        thread.join(WAIT_S)
    assert model.order == ["first", "last"] and results["last"] == "done" and queue.in_flight == 0

    short = GenerationQueue(max_waiting=8, timeout_s=0.2)
    holder = ask(short, model, "holder", results)
    wait_for(lambda: model.order[-1] == "holder", "the holder to hold the model")
    late = ask(short, model, "late", results)
    late.join(WAIT_S)
    assert isinstance(results["late"], BusyError) and "RAG_QUEUE_TIMEOUT_S" in str(results["late"])
    assert short.waiting == 0 and getattr(results["late"], "retry_after", 0) >= 1
    model.turns.release()
    holder.join(WAIT_S)
    assert model.order[-1] == "holder" and short.in_flight == 0


def test_streamed_asks_take_the_model_ahead_of_generated_ones_but_cannot_starve_them():
    queue, model, results = GenerationQueue(max_waiting=16, timeout_s=60), Turnstile(), {}
    threads = [ask(queue, model, "g0", results)]
    wait_for(lambda: model.order == ["g0"], "the first request to hold the model")
    arrivals = [
        ("g1", "generate"),
        ("g2", "generate"),
        ("s1", "stream"),
        ("s2", "stream"),
        ("s3", "stream"),
        ("s4", "stream"),
    ]
    for i, (name, klass) in enumerate(arrivals, start=1):
        threads.append(ask(queue, model, name, results, klass=klass))
        wait_for(lambda i=i: queue.waiting == i, f"{name} to wait")
        time.sleep(STAGGER_S)
    for _ in range(len(arrivals) + 1):
        model.turns.release()
    for thread in threads:
        thread.join(WAIT_S)
    # Two streams pass g1 and g2; then g1 has been passed over twice and goes, and g2 (passed twice too) next.
    assert model.order == ["g0", "s1", "s2", "g1", "g2", "s3", "s4"]
    assert len(results) == 7 and queue.in_flight == 0 and queue.waiting == 0


def test_a_streamed_ask_is_admitted_on_the_wait_for_the_streams_ahead_of_it_only():
    queue = GenerationQueue(max_waiting=16, timeout_s=60, deadlines_s={"generate": 14.0, "stream": 14.0})
    queue._measured, queue._avg_hold_s = True, 4.0
    held = [queue.admit("generate") for _ in range(4)]  # four generated asks ahead: 16 s expected
    try:
        queue.admit("generate")
        raise AssertionError("a fifth generated ask should be refused on its deadline")
    except BusyError:
        pass
    stream = queue.admit("stream")  # no stream ahead: the model is expected free for it at once
    for ticket in [*held, stream]:
        ticket.release()


def test_with_two_slots_two_requests_hold_the_model_and_the_rest_wait_in_order():
    queue, model, results = GenerationQueue(max_waiting=8, timeout_s=60, slots=2), Turnstile(), {}
    threads = [ask(queue, model, "0", results)]
    wait_for(lambda: model.order == ["0"], "the first request to hold the model")
    threads.append(ask(queue, model, "1", results))
    wait_for(lambda: model.order == ["0", "1"], "the second to hold it beside the first")
    assert queue.waiting == 0
    for i in range(2, 5):
        threads.append(ask(queue, model, str(i), results))
        wait_for(lambda i=i: queue.waiting == i - 1, f"request {i} to wait")
        time.sleep(STAGGER_S)
    model.turns.release()  # one answer ends: exactly one waiter takes its slot
    wait_for(lambda: len(model.order) == 3, "the first waiter to get the freed slot")
    time.sleep(0.1)
    assert model.order == ["0", "1", "2"] and queue.waiting == 2
    for n in (4, 5):  # one at a time: two slots freed at once would start their waiters side by side
        model.turns.release()
        wait_for(lambda n=n: len(model.order) == n, f"waiter {n - 1} to get a slot")
    for _ in range(3):
        model.turns.release()
    for thread in threads:
        thread.join(WAIT_S)
    assert model.order == [str(i) for i in range(5)] and queue.in_flight == 0 and queue.busy_seconds > 0


def test_the_expected_wait_counts_answers_ending_slots_at_a_time():
    queue = GenerationQueue(max_waiting=16, timeout_s=60, slots=2, deadlines_s={"generate": 5.0})
    queue._measured, queue._avg_hold_s = True, 4.0
    first, second = queue.admit("generate"), queue.admit("generate")  # fill the two free slots when they ask
    assert queue.estimated_wait_s("generate") == 2.0  # third in line: one of two answers ends, avg/2 apart
    third = queue.admit("generate")
    assert queue.estimated_wait_s("generate") == 4.0
    fourth = queue.admit("generate")
    try:
        queue.admit("generate")  # 6 s expected, past the 5 s deadline
        raise AssertionError("the fifth should be refused on its deadline")
    except BusyError:
        pass
    for ticket in (first, second, third, fourth):
        ticket.release()


def test_the_gate_takes_the_slot_count_the_generator_was_built_with():
    queue, model = GenerationQueue(max_waiting=8, timeout_s=60, slots=2), Turnstile()
    queue.gate(model)  # declares none: the setting stands
    assert queue.slots == 2
    model.slots = 3
    queue.gate(model)
    assert queue.slots == 3
