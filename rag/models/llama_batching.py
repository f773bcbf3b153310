"""Continuous batching for llama.cpp: several answers decoded together in one context.

One llama.cpp context holds up to `slots` sequences, each with its own `n_ctx` of KV cache. A single decoding
thread builds every step's batch from one new token of each running answer plus up to `STEP_PROMPT_TOKENS` of
the prompts still to read, so an answer that arrives while another is being written starts at the next step
instead of waiting for the whole of it. Decoding is cheaper together (two answers wrote 1.65x the tokens per
second of one with the bundled model on one thread), but a RAG answer reads ~270 prompt tokens to write ~55,
and reading does not get cheaper together, so the gain is mostly in when answers start (bench/batching.py
measures it against llama-cpp-python's own one-at-a-time completion). Priority prompts (streamed asks) are read
first, so a newcomer waits at most one step behind another's prompt.

Only llama.cpp's C API (as bound by llama-cpp-python) is used, so the sampling chain is llama.cpp's own: greedy at
temperature 0, as `Llama.create_completion` is, and the same top-k/top-p/min-p/temperature chain above it.
"""

from __future__ import annotations

import codecs
import ctypes
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.core.errors import GeneratorError

# llama-cpp-python's create_completion defaults, so a batched answer samples like a single one.
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05
_DONE = object()
PREFILL_SAMPLE = 64  # a step with at least this many prompt tokens measures the reading rate
# Prompt tokens read per step. A step's length is what a priority prompt that just arrived waits before its own
# reading starts, and what every running answer waits for its next token. The bundled model read prompts at
# ~155 tokens/s on one core here in steps of 64, 128, 256 or 512 alike, so 128 holds the others ~0.8 s where
# a 512-token step (n_batch) held them ~3 s, at no cost in speed.
STEP_PROMPT_TOKENS = 128


@dataclass
class _Sequence:
    """One answer in the context: its prompt still to read, what it produced, and where its pieces go."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    stops: list[str]
    priority: bool = False  # read its prompt before the others' (a streamed ask: its reader is waiting)
    out: queue.Queue[Any] = field(default_factory=queue.Queue)
    slot: int = -1
    pos: int = 0  # tokens of this sequence already in the KV cache
    fed: int = 0  # prompt tokens already put in a batch
    last: int = -1  # the token sampled last, fed at the next step
    produced: int = 0
    cancelled: bool = False
    sampler: Any = None
    held: str = ""  # text kept back because it may be the start of a stop string
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters of `text` could begin a stop string, and so must wait for the next piece."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:n]):
                keep = n
                break
    return keep


class Completion:
    """One submitted answer: iterate for its text pieces; `close()` (or leaving the loop early) frees its
    sequence at the next step; `tokens` counts what the model produced."""

    def __init__(self, seq: _Sequence):
        self._seq = seq

    @property
    def tokens(self) -> int:
        return self._seq.produced

    def __iter__(self) -> Iterator[str]:
        try:
            while (piece := self._seq.out.get()) is not _DONE:
                if isinstance(piece, Exception):
                    raise piece
                yield piece
        finally:
            self.close()

    def close(self) -> None:
        self._seq.cancelled = True  # no-op once finished; otherwise the loop drops it at the next step


class BatchedLlama:
    """Decodes up to `slots` answers at once over a loaded llama.cpp model (a `llama_model*`)."""

    def __init__(
        self,
        model: Any,
        *,
        slots: int,
        n_ctx: int,
        n_batch: int,
        n_threads: int,
        n_threads_batch: int | None = None,
        seed: int = 0,
    ):
        import llama_cpp as L

        self._L = L
        self.slots = slots
        self.n_ctx = n_ctx
        self.n_batch = max(n_batch, slots)
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = slots
        params.n_threads = n_threads
        params.n_threads_batch = n_threads_batch or n_threads
        params.kv_unified = False  # each sequence its own n_ctx cells: one long answer cannot crowd out the rest
        self._ctx = L.llama_init_from_model(model, params)
        if not self._ctx:
            raise GeneratorError(f"llama.cpp could not create a context for {slots} sequences of {n_ctx} tokens")
        self._vocab = L.llama_model_get_vocab(model)
        self._n_vocab = L.llama_vocab_n_tokens(self._vocab)
        self._eog = frozenset(t for t in range(self._n_vocab) if L.llama_vocab_is_eog(self._vocab, t))
        self._pieces: dict[int, bytes] = {}
        self._memory = L.llama_get_memory(self._ctx)
        self._batch = L.llama_batch_init(self.n_batch, 0, 1)
        self._seed = seed
        self._free_slots = deque(range(slots))
        self._prefill_rate = 0.0  # prompt tokens read per second, measured on steps that are mostly prompt
        self._avg_prompt = 0.0
        self._waiting: deque[_Sequence] = deque()  # submitted, no slot yet
        self._running: list[_Sequence] = []
        self._wake = threading.Condition()
        self._closed = False
        self._stopped = False  # the decoding thread has left its loop: nothing touches the context any more
        self._free_when_stopped = False
        self._freed = False
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    # --- caller side -------------------------------------------------------------------------------------
    def submit(
        self, prompt: list[int], *, max_tokens: int, temperature: float, stops: list[str], priority: bool = False
    ) -> Completion:
        """Queue one answer; its text comes from iterating the Completion, decoded with whatever else runs."""
        if len(prompt) + max_tokens > self.n_ctx:
            raise GeneratorError(
                f"prompt of {len(prompt)} tokens plus {max_tokens} to generate exceed the {self.n_ctx}-token context"
            )
        seq = _Sequence(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stops=[s for s in stops if s],
            priority=priority,
        )
        with self._wake:
            if self._closed:
                raise GeneratorError("the generator was closed")
            self._waiting.append(seq)
            self._wake.notify()
        return Completion(seq)

    def close(self, timeout_s: float = 30.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=timeout_s)
        with self._wake:
            if not self._stopped:
                # A llama_decode longer than the wait still runs on the context: freeing it now would be a
                # use-after-free in C. The thread frees it as it leaves the loop instead.
                self._free_when_stopped = True
                return
        self._free()

    def _free(self) -> None:
        with self._wake:
            if self._freed:
                return
            self._freed = True
        L = self._L
        L.llama_batch_free(self._batch)
        L.llama_free(self._ctx)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._wake:
                self._stopped = True
                owed = self._free_when_stopped
            if owed:
                self._free()

    @property
    def active(self) -> int:
        return len(self._running) + len(self._waiting)

    def backlog_s(self, priority: bool = False, coming: float = 0.0) -> float:
        """How long the prompts ahead of a new answer take to read: those not yet read (only the priority ones
        for a priority answer, which goes before the rest) plus `coming` more prompts of the average length.
        Reading prompts is most of a small model's work (an answer's ~800 prompt tokens against ~60 written),
        so this, not the number of answers running, tells when a newcomer's first token can come. 0 until a
        rate has been measured."""
        if not self._prefill_rate:
            return 0.0
        ahead = [s for s in [*self._running, *self._waiting] if s.priority or not priority]
        tokens = sum(len(s.prompt) - s.fed for s in ahead) + coming * self._avg_prompt
        return tokens / self._prefill_rate

    # --- decoding thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._running and not self._waiting:
                    self._wake.wait()
                if self._closed:
                    for seq in [*self._running, *self._waiting]:
                        seq.out.put(GeneratorError("the generator was closed"))
                    return
                starting = []
                while self._waiting and self._free_slots:
                    first = next((s for s in self._waiting if s.priority), self._waiting[0])
                    self._waiting.remove(first)
                    first.slot = self._free_slots.popleft()  # taken here: the loop's test must see it go
                    starting.append(first)
            try:
                for seq in starting:
                    self._start(seq)
                self._step()
            except Exception as exc:
                # A caller blocks on its answer's pieces until an end arrives: each one must get its error.
                for seq in [*self._running, *(s for s in starting if s not in self._running)]:
                    self._finish(seq, GeneratorError(f"llama.cpp decoding failed: {exc}"))

    def _start(self, seq: _Sequence) -> None:
        L = self._L
        self._avg_prompt = (
            0.8 * self._avg_prompt + 0.2 * len(seq.prompt) if self._avg_prompt else float(len(seq.prompt))
        )
        L.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if seq.temperature <= 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(TOP_K))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(TOP_P, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(MIN_P, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(seq.temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(self._seed + seq.slot))
        seq.sampler = chain
        self._running.append(seq)

    def _finish(self, seq: _Sequence, end: Any = _DONE) -> None:
        L = self._L
        if seq in self._running:
            self._running.remove(seq)
        if seq.sampler is not None:
            L.llama_sampler_free(seq.sampler)
            seq.sampler = None
        # The slot goes back before the caller hears the end, so a caller that asks again at once finds it
        # free (CI caught the other order: an ended answer whose slot was still taken).
        if seq.slot >= 0:  # given back once, even if the answer ends twice (cancelled, then failed)
            L.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
            with self._wake:
                self._free_slots.append(seq.slot)
            seq.slot = -1
        if end is _DONE and seq.held:
            seq.out.put(seq.held)
        seq.out.put(end)

    def _step(self) -> None:
        """One llama_decode: a token for each answer being written, then prompt tokens while room is left."""
        L, batch = self._L, self._batch
        for seq in [s for s in self._running if s.cancelled]:
            self._finish(seq)
        n = 0
        outputs: list[tuple[_Sequence, int]] = []

        def add(seq: _Sequence, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = seq.pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq.slot
            batch.logits[n] = logits
            if logits:
                outputs.append((seq, n))
            seq.pos += 1
            n += 1

        for seq in self._running:
            if not seq.prefilling:
                add(seq, seq.last, True)
        decoding = n
        # Prompts in arrival order, priority ones first, chunked: a long prompt cannot hold up the answers
        # already running for more than one batch's worth of reading.
        room = min(self.n_batch, n + STEP_PROMPT_TOKENS)
        for seq in sorted(self._running, key=lambda s: not s.priority):
            while seq.prefilling and n < room:
                seq.fed += 1
                add(seq, seq.prompt[seq.fed - 1], not seq.prefilling)
        if n == 0:
            return
        batch.n_tokens = n
        started = time.perf_counter()
        status = L.llama_decode(self._ctx, batch)
        if status != 0:
            raise GeneratorError(f"llama_decode returned {status}")
        if n - decoding >= PREFILL_SAMPLE:
            rate = (n - decoding) / max(time.perf_counter() - started, 1e-6)
            self._prefill_rate = 0.7 * self._prefill_rate + 0.3 * rate if self._prefill_rate else rate
        greedy = [i for i, (seq, _) in enumerate(outputs) if seq.temperature <= 0]
        if greedy:
            # One C call for every greedy answer's logits, argmax in numpy: under `rag serve` each C call gives
            # up the GIL and waits to get it back from busy request threads, several ms a time.
            logits = np.ctypeslib.as_array(L.llama_get_logits(self._ctx), shape=(len(outputs), self._n_vocab))
            best = logits[greedy].argmax(axis=1)
        picks = dict(zip(greedy, best.tolist())) if greedy else {}
        for i, (seq, index) in enumerate(outputs):
            token = picks[i] if i in picks else L.llama_sampler_sample(seq.sampler, self._ctx, index)
            self._emit(seq, token)

    def _piece(self, token: int) -> bytes:
        """The token's bytes, from a table filled as tokens are first seen (no C call after that)."""
        piece = self._pieces.get(token)
        if piece is None:
            L = self._L
            buf = ctypes.create_string_buffer(64)
            size = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if size < 0:
                buf = ctypes.create_string_buffer(-size)
                size = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = self._pieces[token] = buf.raw[:size]
        return piece

    def _emit(self, seq: _Sequence, token: int) -> None:
        seq.produced += 1
        seq.last = token
        if token in self._eog:
            self._finish(seq)
            return
        text = seq.held + seq.decoder.decode(self._piece(token))
        for stop in seq.stops:
            if (at := text.find(stop)) >= 0:
                seq.held = ""
                if at:
                    seq.out.put(text[:at])
                self._finish(seq)
                return
        keep = _held_back(text, seq.stops)
        seq.held = text[len(text) - keep :] if keep else ""
        if text[: len(text) - keep]:
            seq.out.put(text[: len(text) - keep])
        if seq.produced >= seq.max_tokens:
            self._finish(seq)
