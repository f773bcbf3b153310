"""Every benchmark script runs to the end at tiny sizes (`--smoke`), so a benchmark broken by a change fails here
instead of in the next `make bench` (issue 26: bench/search.py and bench/answer.py had rotted unseen). The
figures of a smoke run mean nothing and are written to a temporary folder; nothing here asserts a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from run_all import SMOKE  # noqa: E402

# st_onnx.py measures sentence-transformers' ONNX backend, which needs optimum-onnx: its only release caps
# transformers below the version pinned here, so it runs only with those packages put on PYTHONPATH (its --help).
NEEDS_OPTIMUM = {"st_onnx"}


def test_every_script_is_in_the_smoke_list():
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"common", "run_all"} - NEEDS_OPTIMUM
    assert scripts == set(SMOKE)


@pytest.mark.parametrize("name", SMOKE)
def test_bench_script_runs_in_smoke_mode(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"BENCH_OUT_DIR": str(tmp_path / "out"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
