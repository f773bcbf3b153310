"""Starting real servers in tests: a free loopback port, and waiting until a server answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float, interval_s: float = 0.5, headers: dict[str, str] | None = None) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"server exited early:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(url, timeout=5, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"server not ready at {url} in {timeout_s:.0f} s:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(interval_s)


@contextlib.contextmanager
def rag_server(command: list[str], *, cwd: Path, env: dict[str, str], log: Path, headers: dict[str, str] | None = None, ready_timeout_s: float = 300) -> Iterator[str]:
    """`rag ... serve --port N` as a subprocess on 127.0.0.1 (the port is picked here): yields its base URL once
    /readyz answers, and stops it afterwards, killing it if it will not stop."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, f"{base}/readyz", log, ready_timeout_s, headers=headers)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
