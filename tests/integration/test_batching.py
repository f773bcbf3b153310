"""Answers decoded together in one llama.cpp context (RAG_MODEL_SLOTS, rag/models/llama_batching.py), with the
bundled GGUF:
each answer is the text it gets alone, stops where it should, and one that is abandoned frees its slot."""

from __future__ import annotations

import threading
import time

import pytest

from rag.models.generator import LlamaCppGenerator, default_gguf_path
from rag.models.llama_batching import _held_back

FACTS = [
    "NATO leaders met in Vilnius in July 2023 and agreed to create the NATO-Ukraine Council.",
    "The central bank raised interest rates by half a point to fight inflation.",
    "A storm flooded the coastal towns and thousands were evacuated.",
    "The company recalled 300,000 cars over a braking defect.",
]


def chat(fact: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer from the context in one sentence."},
        {"role": "user", "content": f"Context: {fact}\nQuestion: What happened?"},
    ]


@pytest.fixture(scope="module")
def batched() -> LlamaCppGenerator:
    generator = LlamaCppGenerator(default_gguf_path(), n_threads=1, slots=4)
    yield generator
    generator.close()


def test_answers_decoded_together_are_the_answers_each_gets_alone(batched):
    alone = ["".join(batched.stream(chat(f), max_tokens=48, temperature=0.0)) for f in FACTS]
    assert all(text.strip() for text in alone)
    together: dict[int, str] = {}
    timeline: dict[int, tuple[float, float]] = {}

    def ask(i: int) -> None:
        start = first = None
        pieces = []
        start = time.monotonic()
        for piece in batched.stream(chat(FACTS[i]), max_tokens=48, temperature=0.0):
            first = first or time.monotonic()
            pieces.append(piece)
        together[i] = "".join(pieces)
        timeline[i] = (first or start, time.monotonic())

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(FACTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [together[i] for i in range(len(FACTS))] == alone
    # Decoded side by side, not in turns: every answer's first token came before every other one ended.
    assert max(first for first, _ in timeline.values()) < min(end for _, end in timeline.values())


def test_token_counts_and_stop_strings(batched):
    text = "".join(batched.stream(chat(FACTS[3]), max_tokens=48, temperature=0.0))
    assert batched.usage.completion_tokens >= 2 and batched.usage.prompt_tokens > 20
    word = text.split()[2]
    cut = "".join(batched.stream(chat(FACTS[3]), max_tokens=48, temperature=0.0, stop=[word]))
    assert cut == text[: text.index(word)]
    capped = "".join(batched.stream(chat(FACTS[3]), max_tokens=3, temperature=0.0))
    assert batched.usage.completion_tokens == 3 and text.startswith(capped)


def test_an_abandoned_answer_frees_its_slot(batched):
    stream = batched.stream(chat(FACTS[0]), max_tokens=200, temperature=0.0)
    next(stream)
    stream.close()
    engine = batched._engine
    deadline = time.monotonic() + 30
    while engine.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active == 0
    assert "".join(batched.stream(chat(FACTS[2]), max_tokens=48, temperature=0.0)).strip()


def test_more_answers_than_slots_wait_for_one_and_all_finish(batched):
    from rag.models.llama_batching import BatchedLlama

    engine = BatchedLlama(batched._llm._model.model, slots=2, n_ctx=512, n_batch=64, n_threads=1)
    try:
        prompts = [batched.tokenize(fact) for fact in FACTS]  # four answers submitted at once to two slots
        with engine._wake:
            completions = [engine.submit(p, max_tokens=6, temperature=0.0, stops=[]) for p in prompts]
        texts = [""] * len(completions)

        def drain(i: int) -> None:
            texts[i] = "".join(completions[i])

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(completions))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(texts) and all(c.tokens == 6 for c in completions)
        assert sorted(engine._free_slots) == [0, 1] and engine.active == 0
    finally:
        engine.close()


def test_held_back_keeps_only_what_could_begin_a_stop_string():
    assert _held_back("the answer is <|im", ["<|im_end|>"]) == 4
    assert _held_back("the answer is here", ["<|im_end|>"]) == 0
    assert _held_back("ends with Sour", ["Sources:", "<|im_end|>"]) == 4
    assert _held_back("x", []) == 0


def test_a_priority_prompt_is_read_first_and_the_backlog_counts_what_is_ahead(batched):
    from rag.models.llama_batching import BatchedLlama

    engine = BatchedLlama(batched._llm._model.model, slots=2, n_ctx=512, n_batch=64, n_threads=1)
    try:
        long_prompt = batched.tokenize(" ".join(FACTS) * 2)  # ~100 tokens: two batches of 64 to read
        assert len(long_prompt) > 64
        first: dict[str, float] = {}

        def consume(name: str, completion) -> None:
            for _ in completion:
                first.setdefault(name, time.monotonic())

        with engine._wake:  # both submitted before the loop can start either
            plain = engine.submit(long_prompt, max_tokens=4, temperature=0.0, stops=[])
            urgent = engine.submit(long_prompt, max_tokens=4, temperature=0.0, stops=[], priority=True)
        threads = [threading.Thread(target=consume, args=(n, c)) for n, c in (("plain", plain), ("urgent", urgent))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert first["urgent"] < first["plain"]
        assert engine._prefill_rate > 0  # measured on those reads
        with engine._wake:  # nothing running: the backlog is only what is said to be coming
            assert engine.backlog_s() == 0.0
            assert engine.backlog_s(coming=2) == pytest.approx(2 * engine._avg_prompt / engine._prefill_rate)
    finally:
        engine.close()


def test_a_failure_in_the_decoding_loop_reaches_every_waiting_caller_and_the_loop_goes_on(batched, monkeypatch):
    from rag.core.errors import GeneratorError
    from rag.models.llama_batching import BatchedLlama

    engine = BatchedLlama(batched._llm._model.model, slots=2, n_ctx=512, n_batch=64, n_threads=1)
    try:
        prompt = batched.tokenize(FACTS[1])
        real_start = engine._start
        monkeypatch.setattr(engine, "_start", lambda seq: (_ for _ in ()).throw(RuntimeError("no sampler")))
        with pytest.raises(GeneratorError, match="no sampler"):
            list(engine.submit(prompt, max_tokens=4, temperature=0.0, stops=[]))
        monkeypatch.setattr(engine, "_start", real_start)
        assert sorted(engine._free_slots) == [0, 1]  # the failed start took no slot for good
        assert "".join(engine.submit(prompt, max_tokens=4, temperature=0.0, stops=[])).strip()
    finally:
        engine.close()
