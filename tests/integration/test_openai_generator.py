"""The OpenAI-compatible generator against a real server: llama-cpp-python's own, serving the bundled GGUF on a free
loopback port, as a user would run llama-server, vLLM or Ollama."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import GeneratorError
from rag.models.generator import OpenAIGenerator, build_generator, default_gguf_path
from rag.models.prompts import PromptSet
from tests.servers import free_port, wait_until_ready

QUESTION = "What was decided about the NATO-Ukraine Council?"
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
SERVER_START_S = 90
REQUEST_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> str:
    """`python -m llama_cpp.server` with the bundled SmolLM2; the base URL of its OpenAI API."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_gguf_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(command + ["--n_ctx", "2048", "--n_threads", "2"], stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(proc, f"{base_url}/models", log_path, SERVER_START_S, interval_s=0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def openai_settings(real_settings, llama_server):
    return real_settings.model_copy(
        update={
            "generator_backend": "openai",
            "openai_base_url": llama_server,
            "openai_model": "smollm2",
            "openai_timeout_s": REQUEST_TIMEOUT_S,
        }
    )


@pytest.fixture(scope="module")
def openai_pipeline(openai_settings, real_index, real_embedder) -> Pipeline:
    generator = build_generator(openai_settings)
    assert isinstance(generator, OpenAIGenerator)
    return Pipeline(openai_settings, real_index, real_embedder, generator, PromptSet.load())


def test_generator_streams_from_the_server(openai_settings):
    generator = build_generator(openai_settings)
    pieces = list(generator.stream([{"role": "user", "content": "Name one colour."}], max_tokens=12, temperature=0.0))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert 0 < generator.usage.completion_tokens <= 12 and generator.usage.prompt_tokens > 0


def test_pipeline_answers_with_verified_citations_over_http(openai_pipeline):
    tokens: list[str] = []
    answer = openai_pipeline.ask(QUESTION, mode="generate", on_token=tokens.append)
    assert not answer.abstained, answer.abstain_reason
    assert answer.citations and {c.doc_id for c in answer.citations} & COUNCIL_DOCS
    assert "council" in answer.text.lower()
    assert answer.sentences and all(s.supported for s in answer.sentences)
    for c in answer.citations:
        assert openai_pipeline.index.articles[c.doc_id].text[c.start : c.end] == c.quote
    # Streaming: the draft arrived piece by piece and is exactly what the model said.
    assert len(tokens) > 1 and "".join(tokens).strip() == answer.raw_generation
    assert answer.timings.ttft_s is not None and answer.timings.completion_tokens > 0


def test_stopping_early_closes_the_stream(openai_pipeline):
    seen: list[str] = []
    answer = openai_pipeline.ask(QUESTION, mode="generate", on_token=seen.append, should_stop=lambda: len(seen) >= 2)
    assert len(seen) == 2 and answer.raw_generation == "".join(seen).strip()
    # The server is free again at once: a cancelled request must not hold it.
    again = build_generator(openai_pipeline.settings)
    assert list(again.stream([{"role": "user", "content": "Say yes."}], max_tokens=3, temperature=0.0))


def test_server_down_is_a_generator_error(openai_settings, real_index, real_embedder):
    down = openai_settings.model_copy(
        update={"openai_base_url": f"http://127.0.0.1:{free_port()}/v1", "openai_timeout_s": 5.0}
    )
    pipeline = Pipeline(down, real_index, real_embedder, build_generator(down), PromptSet.load())
    started = time.monotonic()
    with pytest.raises(GeneratorError, match="127.0.0.1"):
        pipeline.ask(QUESTION, mode="generate")
    assert time.monotonic() - started < 30
    # Extractive mode needs no generator, so it still answers.
    assert pipeline.ask(QUESTION, mode="extractive").citations


def test_wrong_path_on_a_live_server_is_a_generator_error(openai_settings, llama_server):
    wrong = openai_settings.model_copy(update={"openai_base_url": llama_server.removesuffix("/v1") + "/nope"})
    with pytest.raises(GeneratorError):
        list(build_generator(wrong).stream([{"role": "user", "content": "hi"}], max_tokens=3, temperature=0.0))
