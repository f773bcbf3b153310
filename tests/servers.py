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


def wait_until_ready(
    proc: subprocess.Popen,
    url: str,
    log: Path,
    timeout_s: float,
    interval_s: float = 0.5,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"server exited early:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(url, timeout=5, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, (
            f"server not ready at {url} in {timeout_s:.0f} s:\n{log.read_text(errors='replace')[-3000:]}"
        )
        time.sleep(interval_s)


@contextlib.contextmanager
def rag_server(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    headers: dict[str, str] | None = None,
    ready_timeout_s: float = 300,
) -> Iterator[str]:
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


class MilvusLiteServer:
    """`milvus-lite server` on a loopback port over one data folder, a stand-in for Milvus standalone; it can be
    stopped and started again on the same port and data (an outage and the recovery)."""

    def __init__(self, data_dir: Path, log: Path, start_timeout_s: float = 60):
        self.data_dir, self.log, self.start_timeout_s = data_dir, log, start_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MilvusLiteServer:
        import sys

        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "milvus_lite",
                    "server",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            assert self.proc.poll() is None, (
                f"milvus-lite server exited: {self.log.read_text(errors='replace')[-2000:]}"
            )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "milvus-lite server did not listen in time"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
