"""No query-time path imports torch (issue 26): `rag ask` without the model, `rag search` and a running `rag serve`
answering searches and questions, with the default settings and the real ONNX embedder, each in a fresh process.
torch alone was ~4 s of every cold start and most of a server's memory; import-linter's "never import torch"
contract (pyproject.toml) checks the imports statically, these check what a process really loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS
from tests.servers import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers")
QUESTION = "What was decided about the NATO-Ukraine Council?"

# Runs the real CLI in this process, then reports which heavy modules it imported.
CLI_THEN_REPORT = """
import json, sys
from rag.cli.main import main
sys.argv = ["rag", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("\\nLOADED " + json.dumps({"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """A fresh process's environment with every RAG_* setting at its default (the index aside)."""
    index = tmp_path_factory.mktemp("no-torch") / "index"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    clean |= {"RAG_INDEX_DIR": str(index), "PYTHONPATH": str(ROOT), "RAG_N_THREADS": "1"}
    built = subprocess.run(
        [sys.executable, "-c", CLI_THEN_REPORT, "index", str(CORPUS)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert json.loads(built.stdout.rsplit("LOADED ", 1)[1])["code"] == 0, built.stdout + built.stderr
    return clean


def run_cli(env: dict[str, str], *args: str) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-c", CLI_THEN_REPORT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    out, report = done.stdout.rsplit("LOADED ", 1)
    return json.loads(report), out + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("ask", QUESTION, "--mode", "extractive"),
        ("ask", QUESTION),  # generate mode: the bundled model's record says quote, so it is never loaded
        ("search", "NATO Ukraine council"),
    ],
    ids=["ask-extractive", "ask-generate-quoted", "search"],
)
def test_cli_queries_never_import_torch(env, args):
    report, output = run_cli(env, *args)
    assert report["code"] == 0, output
    assert "Ukraine" in output  # it answered (or found) something, so the embedder really ran
    assert report["heavy"] == [], output


def test_the_torch_backend_is_still_there_when_asked_for(env):
    """The same probe sees torch when it is configured: the check above can fail."""
    report, output = run_cli(env | {"RAG_EMBEDDING_BACKEND": "torch"}, "search", "NATO Ukraine council")
    assert report["code"] == 0, output
    assert "torch" in report["heavy"] and "sentence_transformers" in report["heavy"]


def _mapped_torch(pid: int) -> list[str]:
    """Shared objects of torch mapped into a running process: there whenever `import torch` ran."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines() if "libtorch" in line or "/torch/_C" in line})


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/<pid>/maps")
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_serve_answers_searches_and_questions_without_torch(env, tmp_path, backend):
    """The default server maps no torch library after answering; configured for torch, the same probe finds it."""
    env = env | {"RAG_EMBEDDING_BACKEND": backend}
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-c", "from rag.cli.main import main; main()", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, f"{base}/readyz", log, 300)
        search = httpx.post(f"{base}/v1/search", json={"query": "NATO Ukraine council"}, timeout=120)
        assert search.status_code == 200 and search.json()["results"], search.text
        for mode in ("extractive", "generate"):
            asked = httpx.post(f"{base}/v1/ask", json={"question": QUESTION, "mode": mode}, timeout=120)
            assert asked.status_code == 200, asked.text
        mapped = _mapped_torch(proc.pid)
        assert bool(mapped) == (backend == "torch"), (mapped, log.read_text(errors="replace")[-2000:])
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
