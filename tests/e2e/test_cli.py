"""The `rag` command as a user runs it: real models, a temp index, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT

pytestmark = pytest.mark.integration
RAG = str(Path(sys.executable).parent / "rag")
COUNCIL = "What was decided about the NATO-Ukraine Council?"


def run(
    *args: str, index: Path, stdin: str | None = None, timeout: int = 300, **env: str
) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update({"RAG_INDEX_DIR": str(index), **env})
    return subprocess.run(
        [RAG, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=environ, cwd=ROOT
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "index"
    result = run("index", str(CORPUS), index=path)
    assert result.returncode == 0, result.stderr
    assert "5 added" in result.stdout
    return path


def test_reindexing_unchanged_files_embeds_nothing(index):
    result = run("index", str(CORPUS), index=index)
    assert result.returncode == 0 and "0 passages embedded" in result.stdout and "5 unchanged" in result.stdout


def test_ask_json_cites_council_article(index):
    result = run("ask", COUNCIL, "--json", index=index)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert not answer["abstained"]
    assert {c["doc_id"] for c in answer["citations"]} & {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
    for c in answer["citations"]:
        assert c["quote"] and c["end"] > c["start"] and c["date"]


def test_ask_prints_answer_and_dated_sources(index):
    result = run("ask", COUNCIL, "--mode", "extractive", index=index)
    assert result.returncode == 0, result.stderr
    assert "Sources" in result.stdout and "[1]" in result.stdout and "2023-06-15" in result.stdout


def test_ask_abstains_with_closest_sources(index):
    result = run("ask", "What is the population of Ukraine?", index=index)
    assert result.returncode == 0
    assert "The articles don't say" in result.stdout and "Closest sources" in result.stdout


def test_search_and_info(index):
    result = run("search", "Kuleba Washington summit", "-k", "3", index=index)
    assert result.returncode == 0 and "002_e0b0d12e770a7305#" in result.stdout and "2024-03-19" in result.stdout
    info = json.loads(run("info", "--json", index=index).stdout)
    assert info["documents"] == 5 and info["dimension"] == 384 and info["passages"] > 5


def test_chat_keeps_history_and_shows_sources(index):
    script = f"{COUNCIL}\n/sources\nAnd when did the commission meet?\n/quit\n"
    result = run("chat", "--mode", "extractive", index=index, stdin=script)
    assert result.returncode == 0, result.stderr
    assert "Sources" in result.stdout
    assert "searched for:" in result.stdout  # the follow-up was rewritten with the history


@pytest.mark.parametrize(
    "args, env, message",
    [
        (("ask", "   "), {}, "question is empty"),
        (("ask", "x" * 3000), {}, "limit"),
        (("ask", "NATO?", "--top-k", "-1"), {}, "top_k"),
        (("ask", "NATO?", "--since", "last week"), {}, "not a date"),
        (("search", "NATO", "--method", "magic"), {}, "--method"),
        (("remove", "no_such_doc"), {}, "no document"),
        (("remove", "../../etc/passwd"), {}, "document id"),
        (("ask", COUNCIL), {"RAG_GGUF_PATH": "/nope/model.gguf"}, "no GGUF file"),
        (("info",), {"RAG_TOP_K": "many"}, "RAG_TOP_K"),
    ],
)
def test_errors_are_one_clean_line(index, args, env, message):
    result = run(*args, index=index, **env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0] and "Traceback" not in result.stderr


def test_missing_index_is_a_clean_error(tmp_path):
    result = run("ask", COUNCIL, index=tmp_path / "nothing")
    assert result.returncode == 1 and result.stderr.startswith("error: no index")
