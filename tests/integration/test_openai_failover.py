"""Several OpenAI-compatible servers in RAG_OPENAI_BASE_URL: answers go round robin, and a server that cannot be
reached passes the request to the next. Two small fake servers on loopback ports, each replying with its name."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.core.errors import GeneratorError
from rag.core.settings import Settings
from rag.models.generator import OpenAIGenerator, build_generator
from tests.servers import free_port

HELLO = [{"role": "user", "content": "hello"}]


class FakeServer:
    """Answers POST /v1/chat/completions with a two-piece stream: its own name, then " here"."""

    def __init__(self, name: str):
        self.name = name
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in (owner.name, " here"):
                    chunk = {
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "fake",
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    a, b = FakeServer("alpha"), FakeServer("beta")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def ask(generator: OpenAIGenerator) -> str:
    return "".join(generator.stream(HELLO, max_tokens=5, temperature=0.0))


def test_answers_alternate_between_the_servers(servers):
    a, b = servers
    settings = Settings(
        _env_file=None, generator_backend="openai", openai_base_url=f"{a.url}, {b.url}", openai_timeout_s=5.0
    )
    generator = build_generator(settings)
    assert isinstance(generator, OpenAIGenerator) and generator.base_urls == [a.url, b.url]
    replies = [ask(generator) for _ in range(4)]
    assert replies == ["alpha here", "beta here", "alpha here", "beta here"]
    assert (a.hits, b.hits) == (2, 2)


def test_a_server_that_cannot_be_reached_passes_its_turn_to_the_next(servers):
    a, _ = servers
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    generator = OpenAIGenerator([dead, a.url], "fake", timeout_s=5.0)
    assert [ask(generator) for _ in range(3)] == ["alpha here"] * 3
    assert a.hits == 3


def test_every_server_down_is_one_generator_error_naming_each():
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    generator = OpenAIGenerator(dead, "fake", timeout_s=5.0)
    with pytest.raises(GeneratorError, match="no generator server could be reached") as caught:
        ask(generator)
    assert all(url in str(caught.value) for url in dead)


def test_one_url_keeps_the_single_server_behaviour(servers):
    a, _ = servers
    generator = build_generator(Settings(_env_file=None, generator_backend="openai", openai_base_url=a.url))
    assert generator.name == f"local@{a.url}" and ask(generator) == "alpha here"
