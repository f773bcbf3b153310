"""`rag eval` as a user runs it, on the real embedder, FAISS and (for generate mode) the bundled GGUF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli.main import app
from rag.evaluate.harness import QualityRegressionError
from rag.evaluate.scoring import SUMMARY_KEYS
from tests.conftest import ROOT

DEV = ROOT / "data" / "questions" / "dev_questions.jsonl"
RAG = Path(sys.executable).parent / "rag"


@pytest.fixture
def invoke(real_settings, real_index, monkeypatch, tmp_path):
    """Runs `rag --index-dir <session index> ...` in a folder with no .env, so RAG_* from a developer's shell cannot
    leak in.
    """
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(key)

    def run(*args: str):
        return CliRunner().invoke(app, ["--index-dir", str(real_settings.index_dir), *args])

    return run


def test_extractive_eval_on_dev_questions_writes_both_reports(invoke, tmp_path):
    result = invoke("eval", str(DEV), "--mode", "extractive", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    s = report["summary"]
    assert list(s) == list(SUMMARY_KEYS) and s["n"] == 8
    # Quoting verbatim, every shown citation is its own sentence: both checks must pass it.
    assert s["citation_validity"] == 1.0 and report["details"]["citation_validity_lexical"] == 1.0
    assert s["hit_at_5"] >= 0.8 and s["ttft_p50_s"] is None and s["prompt_tokens_mean"] is None
    assert "## Quality" in result.output and "retrieval MRR" in result.output  # the Markdown summary is printed
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Eval report")

    # The same run against a baseline it cannot reach fails, naming the figure that dropped.
    report["summary"]["mrr"] = s["mrr"] + 0.5
    (tmp_path / "base.json").write_text(json.dumps(report))
    gated = invoke(
        "eval",
        str(DEV),
        "--mode",
        "extractive",
        "--out",
        str(tmp_path / "gated"),
        "--baseline",
        str(tmp_path / "base.json"),
    )
    assert isinstance(gated.exception, QualityRegressionError) and "mrr" in str(gated.exception)
    loose = invoke(
        "eval",
        str(DEV),
        "--mode",
        "extractive",
        "--out",
        str(tmp_path / "loose"),
        "--baseline",
        str(tmp_path / "base.json"),
        "--tolerance",
        "0.6",
    )
    assert loose.exit_code == 0, loose.output


def test_generate_mode_with_a_follow_up(invoke, tmp_path):
    questions = tmp_path / "q.jsonl"
    rows = [
        {
            "id": "c",
            "question": "What was decided about the NATO-Ukraine Council?",
            "must_include": [["council"]],
            "gold_docs": ["001_d33884d0ecc97606", "000_ff6882ef16d64a7d"],
            "type": "single",
        },
        {
            "id": "f",
            "question": "And when did the commission meet?",
            "must_include": [["thursday"]],
            "gold_docs": ["001_d33884d0ecc97606"],
            "type": "followup",
            "history": [
                {"role": "user", "content": "What was decided about the NATO-Ukraine Council?"},
                {"role": "assistant", "content": "It is to be upgraded to a council."},
            ],
        },
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("eval", str(questions), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["run"]["mode"] == "generate" and report["run"]["generator"]
    follow_up = report["questions"][1]
    assert follow_up["standalone_question"] != follow_up["question"]  # rewritten with the history
    assert report["summary"]["hit_at_5"] == 1.0


def test_malformed_question_file_is_one_line_error_before_models_load(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        DEV.read_text().splitlines()[0] + "\n" + '{"id": "x", "question": "Who?", "must_include": "kuleba"}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "RAG_INDEX_DIR": str(tmp_path / "no-index")
    }
    done = subprocess.run(
        [str(RAG), "eval", str(bad)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1
    assert "line 2" in done.stderr and "must_include" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "no-index").exists()  # never got as far as the index or the models
