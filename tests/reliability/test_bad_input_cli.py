"""Bad input through the real `rag` command: one `error:` line on stderr, exit 1, no traceback, and the
index on disk unchanged. Checks that need no model run first, so most of these take a second; the few that
must load the embedder run concurrently (see `model_runs`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embedder import HashingEmbedder
from rag.evaluate import load_questions
from rag.indexing import index_paths
from rag.settings import Settings
from tests.conftest import CORPUS
from tests.reliability.conftest import RAG, assert_one_line_error, clean_env, read_disk_index, run_rag

QUESTION = "What was decided about the NATO-Ukraine Council?"


@pytest.fixture
def shared_index(real_index_template) -> Iterator[Path]:
    """The session's real index, read-only here: whatever a test sends, the index must not change."""
    before = read_disk_index(real_index_template)
    yield real_index_template
    assert read_disk_index(real_index_template) == before


# --- refused before any model is loaded ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["ask", ""], ["question is empty"]),
        (["ask", "   \t  "], ["question is empty"]),
        (["ask", "x" * 100_000], ["100000 characters", "limit is 2000"]),
        (["ask", QUESTION, "--top-k", "-1"], ["top_k must be between 1 and 50"]),
        (["ask", QUESTION, "--top-k", "0"], ["top_k"]),
        (["ask", QUESTION, "--top-k", "1000000"], ["top_k"]),
        (["ask", QUESTION, "--since", "yesterday"], ["since 'yesterday' is not a date"]),
        (["ask", QUESTION, "--until", "2024-13-45"], ["until", "not a date"]),
        (["ask", QUESTION, "--since", "2024-01-01", "--until", "2023-01-01"], ["after until"]),
        (["ask", QUESTION, "--mode", "poetry"], ["mode must be"]),
        (["search", "  "], ["question is empty"]),
        (["search", "NATO", "--method", "telepathy"], ["--method"]),
        (["remove", "../../etc/passwd"], ["invalid document id"]),
        (["remove", "a/b"], ["invalid document id"]),
    ],
    ids=["empty", "whitespace", "100k-chars", "top-k-negative", "top-k-zero", "top-k-huge", "bad-since", "bad-until",
         "since-after-until", "bad-mode", "search-empty", "search-method", "remove-traversal", "remove-slash"],
)
def test_bad_request_is_one_error_line(shared_index, tmp_path, args, fragments):
    result = run_rag(*args, cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index)
    assert_one_line_error(result, *fragments)


def test_limits_are_settings(shared_index, tmp_path):
    result = run_rag("ask", QUESTION, cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index, RAG_MAX_QUESTION_CHARS="20")
    assert_one_line_error(result, "limit is 20", "RAG_MAX_QUESTION_CHARS")
    result = run_rag("ask", QUESTION, "-k", "9", cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index, RAG_MAX_TOP_K="8")
    assert_one_line_error(result, "between 1 and 8")


@pytest.mark.parametrize(("name", "value"), [("RAG_TOP_K", "five"), ("RAG_MODE", "poetry"), ("RAG_PORT", "70000")])
def test_bad_setting_is_one_error_line(tmp_path, name, value):
    assert_one_line_error(run_rag("info", cwd=tmp_path, timeout=60, **{name: value}), "invalid setting", name)


def test_missing_index_is_one_error_line(tmp_path):
    assert_one_line_error(run_rag("info", cwd=tmp_path, timeout=60, RAG_INDEX_DIR=tmp_path / "nope"), "no index at", "rag index")


@pytest.mark.parametrize("damage", ["pointer-to-missing-generation", "pointer-outside", "manifest-garbage", "manifest-wrong-types"])
def test_corrupt_index_is_one_error_line(real_index, tmp_path, damage):
    current = real_index / "CURRENT"
    manifest = real_index / current.read_text().strip() / "manifest.json"
    if damage == "pointer-to-missing-generation":
        current.write_text("gen-999999")
    elif damage == "pointer-outside":
        current.write_text("../../etc")
    elif damage == "manifest-garbage":
        manifest.write_bytes(b"\x00\xff{not json")
    else:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "dimension": "wide", "documents": []}))
    assert_one_line_error(run_rag("info", cwd=tmp_path, timeout=60, RAG_INDEX_DIR=real_index), "index")


def test_missing_embedding_model_is_one_error_line(shared_index, tmp_path):
    result = run_rag("ask", QUESTION, "--mode", "extractive", cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index, RAG_EMBEDDING_MODEL_PATH="/nope")
    assert_one_line_error(result, "/nope", "RAG_EMBEDDING_MODEL_PATH")


# --- evaluation files ----------------------------------------------------------------------------------------

GOOD_LINE = {"id": "q1", "question": QUESTION, "must_include": [["council"]]}


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b'{"id": "q1", "question": ', ["line 1", "not valid JSON"]),
        (json.dumps({**GOOD_LINE, "must_include": "council"}).encode(), ["line 1", "must_include"]),
        (json.dumps({**GOOD_LINE, "question": 42}).encode(), ["line 1", "question"]),
        (json.dumps([GOOD_LINE]).encode(), ["expected a JSON object"]),
        (json.dumps({**GOOD_LINE, "question": "   "}).encode(), ["question"]),
        (b"", ["no questions"]),
        (b"\xff\xfe\x00binary\x00", ["not UTF-8"]),
    ],
    ids=["malformed-json", "wrong-type-list", "wrong-type-str", "not-an-object", "blank-question", "empty-file", "binary"],
)
def test_bad_eval_file_is_one_error_line(shared_index, tmp_path, content, fragments):
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes(content)
    result = run_rag("eval", str(questions), "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index)
    assert_one_line_error(result, *fragments)


def test_missing_eval_file_is_one_error_line(shared_index, tmp_path):
    result = run_rag("eval", str(tmp_path / "nope.jsonl"), cwd=tmp_path, timeout=60, RAG_INDEX_DIR=shared_index)
    assert_one_line_error(result, "does not exist")


def test_unknown_eval_fields_are_kept_not_refused(tmp_path):
    # Documented: extra fields (a dataset's own tags) ride along into the report instead of failing the file.
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({**GOOD_LINE, "difficulty": "hard"}) + "\n")
    (q,) = load_questions(questions)
    assert q.model_extra == {"difficulty": "hard"}


# --- refused after the model loads: run together, since each pays a model load ------------------------------


def _hashing_index(folder: Path) -> Path:
    index_dir = folder / "hashing-index"
    index_paths(Settings(_env_file=None, index_dir=index_dir), HashingEmbedder(256), [CORPUS])
    return index_dir


def _bad_files(folder: Path) -> dict[str, str]:
    """File name -> the words its skip reason must contain."""
    folder.mkdir()
    (folder / "bad_utf8.txt").write_bytes(b"Caf\xe9 au lait \xff\xfe was served at the summit.\n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("   \n\n\t\n")
    with open(folder / "huge.txt", "wb") as fh:  # 50 MB, sparse: refused by size before a byte is read
        fh.truncate(50 * 1024 * 1024)
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4\n")
    (folder / "bad id!.txt").write_text("A story with an id that is not safe as a file name.\n")
    shutil.copyfile(CORPUS / "001_d33884d0ecc97606.txt", folder / "copy_of_001.txt")
    return {
        "bad_utf8.txt": "not valid UTF-8",
        "binary.txt": "binary",
        "empty.txt": "empty",
        "blank.md": "empty",
        "huge.txt": "exceeds the limit",
        "slides.pdf": "unsupported file type .pdf",
        "bad id!.txt": "invalid document id",
        "copy_of_001.txt": "same content as document 001_d33884d0ecc97606",
        "does_not_exist.txt": "no such file",
    }


@pytest.fixture(scope="module")
def model_runs(real_index_template, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """Start every case that needs the embedder at once (each spends seconds loading it), then collect."""
    work = tmp_path_factory.mktemp("cli-model-runs")
    index_copy = work / "index"
    shutil.copytree(real_index_template, index_copy, ignore=shutil.ignore_patterns(".lock"))
    reasons = _bad_files(work / "bad")
    fake_gguf = work / "model.gguf"
    fake_gguf.write_text("this is a text file, not a model\n")
    corrupt = work / "corrupt-index"
    shutil.copytree(real_index_template, corrupt, ignore=shutil.ignore_patterns(".lock"))
    (corrupt / (corrupt / "CURRENT").read_text().strip() / "passages.jsonl").write_text('{"passage_id": \n')
    ask = ["ask", QUESTION]
    cases: dict[str, tuple[list[str], dict]] = {
        "index-bad-files": (["index", *[str(work / "bad" / name) for name in reasons]], {"RAG_INDEX_DIR": index_copy}),
        "no-index": ([*ask, "--mode", "extractive"], {"RAG_INDEX_DIR": work / "empty"}),
        "corrupt-passages": ([*ask, "--mode", "extractive"], {"RAG_INDEX_DIR": corrupt}),
        "other-model": ([*ask, "--mode", "extractive"], {"RAG_INDEX_DIR": _hashing_index(work)}),
        "gguf-missing": (ask, {"RAG_INDEX_DIR": real_index_template, "RAG_GGUF_PATH": "/nope/model.gguf"}),
        "gguf-not-a-model": (ask, {"RAG_INDEX_DIR": real_index_template, "RAG_GGUF_PATH": fake_gguf}),
    }
    before = read_disk_index(index_copy)
    procs = {
        name: subprocess.Popen([str(RAG), *args], cwd=work, env=clean_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (args, env) in cases.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), {})
    results["index-bad-files"][1].update(reasons=reasons, before=before, after=read_disk_index(index_copy))
    return results


def test_bad_files_are_each_skipped_with_a_reason_and_index_unchanged(model_runs):
    # Batch indexing reports one `skipped PATH: reason` line per refused file (a batch may mix good and
    # bad files) and exits 1 when nothing was indexed.
    result, info = model_runs["index-bad-files"]
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == len(info["reasons"]), result.stderr
    for name, reason in info["reasons"].items():
        (line,) = [line for line in lines if f"{name}:" in line]
        assert line.startswith("skipped ") and reason.lower() in line.lower(), line
    assert "0 added" in result.stdout
    assert info["after"] == info["before"]


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("no-index", ["no index at", "rag index"]),
        ("corrupt-passages", ["do not load"]),
        ("other-model", ["built differently", "hashing-256"]),
        ("gguf-missing", ["no GGUF file at /nope/model.gguf", "RAG_GGUF_PATH"]),
        ("gguf-not-a-model", ["not a GGUF model file"]),
    ],
)
def test_unusable_index_or_model_is_one_error_line(model_runs, case, fragments):
    assert_one_line_error(model_runs[case][0], *fragments)
