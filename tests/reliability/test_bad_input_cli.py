"""Bad input through the real `rag` command: one `error:` line on stderr, exit 1, no traceback, and the index
on disk unchanged. Every case is its own `rag` process; they all start at once (see `runs`), since most
spend their time starting Python and a few loading the embedding model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rag.core.settings import Settings
from rag.evaluate.questions import load_questions
from rag.ingest.indexing import index_paths
from tests.conftest import CORPUS
from tests.fakes import HashingEmbedder
from tests.reliability.conftest import RAG, DiskIndex, assert_one_line_error, clean_env, read_disk_index

QUESTION = "What was decided about the NATO-Ukraine Council?"
ASK = ["ask", QUESTION]
GOOD_LINE = {"id": "q1", "question": QUESTION, "must_include": [["council"]]}

# id -> (arguments, extra environment, words the error line must contain). WORK/ is a scratch folder filled in
# by `runs`; RAG_INDEX_DIR defaults to the session's real index, which must not change. Cases already in
# tests/e2e/test_cli.py::test_errors_are_one_clean_line (whitespace question, top_k -1, unknown search method,
# `remove ../../etc/passwd`, RAG_TOP_K=many, RAG_GGUF_PATH=/nope, no index) are not repeated here.
CASES: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    # refused before any model is loaded
    "empty": (["ask", ""], {}, ["question is empty"]),
    "100k-chars": (["ask", "x" * 100_000], {}, ["100000 characters", "limit is 2000"]),
    "top-k-zero": ([*ASK, "--top-k", "0"], {}, ["top_k must be between 1 and 50"]),
    "top-k-huge": ([*ASK, "--top-k", "1000000"], {}, ["top_k"]),
    "bad-since": ([*ASK, "--since", "yesterday"], {}, ["since 'yesterday' is not a date"]),
    "bad-until": ([*ASK, "--until", "2024-13-45"], {}, ["until", "not a date"]),
    "since-after-until": ([*ASK, "--since", "2024-01-01", "--until", "2023-01-01"], {}, ["after until"]),
    "bad-mode": ([*ASK, "--mode", "poetry"], {}, ["mode must be"]),
    "search-empty": (["search", "  "], {}, ["question is empty"]),
    "zero-width-only": (["ask", "\u200b\u200b\ufeff"], {}, ["question is empty"]),
    "symbols-only": (["search", "?! -- …"], {}, ["no words"]),
    "undecodable-bytes": (["search", "NATO \udcff"], {}, ["not valid Unicode"]),  # argv byte 0xff, not UTF-8
    "remove-slash": (["remove", "a/b"], {}, ["invalid document id"]),
    "remove-dotdot": (["remove", ".."], {}, ["invalid document id"]),
    "limit-question-setting": (ASK, {"RAG_MAX_QUESTION_CHARS": "20"}, ["limit is 20", "RAG_MAX_QUESTION_CHARS"]),
    "limit-top-k-setting": ([*ASK, "-k", "9"], {"RAG_MAX_TOP_K": "8"}, ["between 1 and 8"]),
    "setting-mode": (["info"], {"RAG_MODE": "poetry"}, ["invalid setting", "RAG_MODE"]),
    "setting-port": (["info"], {"RAG_PORT": "70000"}, ["invalid setting", "RAG_PORT"]),
    "no-index-info": (["info"], {"RAG_INDEX_DIR": "WORK/nope"}, ["no index at", "rag index"]),
    "pointer-to-missing-generation": (["info"], {"RAG_INDEX_DIR": "WORK/broken-pointer"}, ["gen-999999", "missing"]),
    "pointer-outside": (["info"], {"RAG_INDEX_DIR": "WORK/broken-outside"}, ["not a generation"]),
    "manifest-garbage": (["info"], {"RAG_INDEX_DIR": "WORK/broken-garbage"}, ["manifest", "does not load"]),
    "manifest-wrong-types": (["info"], {"RAG_INDEX_DIR": "WORK/broken-types"}, ["manifest", "does not load"]),
    "embedding-model-missing": (
        [*ASK, "--mode", "extractive"],
        {"RAG_EMBEDDING_MODEL_PATH": "/nope"},
        ["/nope", "RAG_EMBEDDING_MODEL_PATH"],
    ),
    "eval-malformed-json": (["eval", "WORK/eval-malformed-json.jsonl"], {}, ["line 1", "not valid JSON"]),
    "eval-wrong-type-list": (["eval", "WORK/eval-wrong-type-list.jsonl"], {}, ["line 1", "must_include"]),
    "eval-wrong-type-str": (["eval", "WORK/eval-wrong-type-str.jsonl"], {}, ["line 1", "question"]),
    "eval-not-an-object": (["eval", "WORK/eval-not-an-object.jsonl"], {}, ["expected a JSON object"]),
    "eval-blank-question": (["eval", "WORK/eval-blank-question.jsonl"], {}, ["question"]),
    "eval-empty-file": (["eval", "WORK/eval-empty-file.jsonl"], {}, ["no questions"]),
    "eval-binary": (["eval", "WORK/eval-binary.jsonl"], {}, ["not UTF-8"]),
    "eval-missing": (["eval", "WORK/nope.jsonl"], {}, ["does not exist"]),
    # refused once the embedding model is loaded
    "corrupt-passages": (
        [*ASK, "--mode", "extractive"],
        {"RAG_INDEX_DIR": "WORK/broken-passages"},
        ["passages", "do not load"],
    ),
    "other-model": (
        [*ASK, "--mode", "extractive"],
        {"RAG_INDEX_DIR": "WORK/hashing-index"},
        ["built differently", "hashing-256"],
    ),
    "gguf-not-a-model": (ASK, {"RAG_GGUF_PATH": "WORK/model.gguf"}, ["not a GGUF model file"]),
    "locked": (["index", str(CORPUS)], {"RAG_INDEX_DIR": "WORK/locked"}, ["another process is writing this index"]),
}
EVAL_FILES = {
    "malformed-json": b'{"id": "q1", "question": ',
    "wrong-type-list": json.dumps({**GOOD_LINE, "must_include": "council"}).encode(),
    "wrong-type-str": json.dumps({**GOOD_LINE, "question": 42}).encode(),
    "not-an-object": json.dumps([GOOD_LINE]).encode(),
    "blank-question": json.dumps({**GOOD_LINE, "question": "   "}).encode(),
    "empty-file": b"",
    "binary": b"\xff\xfe\x00binary\x00",
}


def _broken_copies(index: Path, work: Path) -> None:
    for name in ("pointer", "outside", "garbage", "types", "passages"):
        shutil.copytree(index, work / f"broken-{name}", ignore=shutil.ignore_patterns(".lock"))
    (work / "broken-pointer" / "CURRENT").write_text("gen-999999")
    (work / "broken-outside" / "CURRENT").write_text("../../etc")
    live = (index / "CURRENT").read_text().strip()
    (work / "broken-garbage" / live / "manifest.json").write_bytes(b"\x00\xff{not json")
    manifest = work / "broken-types" / live / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "dimension": "wide", "documents": []}))
    segment = json.loads((index / live / "manifest.json").read_text())["segments"][0]["name"]
    (work / "broken-passages" / "segments" / segment / "passages.jsonl").write_text('{"passage_id": \n')


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
def runs(real_index_template, tmp_path_factory) -> dict[str, object]:
    """Start every case at once, collect them, and snapshot the indexes they must not change."""
    from filelock import FileLock

    work = tmp_path_factory.mktemp("cli-runs")
    writable = work / "index"  # `rag index <bad files>` may write here; it must not
    shutil.copytree(real_index_template, writable, ignore=shutil.ignore_patterns(".lock"))
    _broken_copies(real_index_template, work)
    index_paths(Settings(_env_file=None, index_dir=work / "hashing-index"), HashingEmbedder(256), [CORPUS])
    (work / "model.gguf").write_text("this is a text file, not a model\n")
    for name, content in EVAL_FILES.items():
        (work / f"eval-{name}.jsonl").write_bytes(content)
    reasons = _bad_files(work / "bad")
    cases = {name: (args, env) for name, (args, env, _) in CASES.items()}
    cases["index-bad-files"] = (
        ["index", *[str(work / "bad" / name) for name in reasons]],
        {"RAG_INDEX_DIR": str(writable)},
    )

    def fill(text: str) -> str:
        return text.replace("WORK/", f"{work}/")

    before = {"shared": read_disk_index(real_index_template), "writable": read_disk_index(writable)}
    (work / "locked").mkdir()
    lock = FileLock(str(work / "locked" / ".lock"))  # the lock file IndexLock takes: another writer holds it
    lock.acquire()
    procs = {}
    for name, (args, env) in cases.items():
        env = {"RAG_INDEX_DIR": str(real_index_template), **{k: fill(v) for k, v in env.items()}}
        procs[name] = subprocess.Popen(
            [str(RAG), *map(fill, args)],
            cwd=work,
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results: dict[str, object] = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=900)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        lock.release()
        for proc in procs.values():
            proc.kill()
    results["reasons"] = reasons
    results["before"], results["after"] = (
        before,
        {"shared": read_disk_index(real_index_template), "writable": read_disk_index(writable)},
    )
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_one_error_line(runs, case):
    assert_one_line_error(runs[case], *CASES[case][2])


def test_refused_input_changes_no_index(runs):
    before: dict[str, DiskIndex] = runs["before"]
    assert runs["after"] == before


def test_bad_files_are_each_skipped_with_a_reason(runs):
    # Batch indexing reports one `skipped PATH: reason` line per refused file (a batch may mix good and bad
    # files) and exits 1 when nothing was indexed.
    result, reasons = runs["index-bad-files"], runs["reasons"]
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == len(reasons), result.stderr
    for name, reason in reasons.items():
        (line,) = [line for line in lines if f"{name}:" in line]
        assert line.startswith("skipped ") and reason.lower() in line.lower(), line
    assert "0 added" in result.stdout


def test_unknown_eval_fields_are_kept_not_refused(tmp_path):
    # Documented: extra fields (a dataset's own tags) ride along into the report instead of failing the file.
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({**GOOD_LINE, "difficulty": "hard"}) + "\n")
    (q,) = load_questions(questions)
    assert q.model_extra == {"difficulty": "hard"}
