"""Shared tools for the reliability tests: the real `rag` command as a subprocess, on-disk index snapshots
and consistency checks that read the files themselves (no model), and the full-length switch.

RAG_RELIABILITY_FULL=1 runs the kill loop and the soak at full length; `make test` runs reduced but real forms.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, ROOT

FULL = os.environ.get("RAG_RELIABILITY_FULL", "").lower() in ("1", "true", "yes")
RAG = Path(sys.executable).with_name("rag")  # the console script of the venv running the tests
PYTHON = sys.executable


def clean_env(**overrides: str | os.PathLike) -> dict[str, str]:
    """The caller's environment minus every RAG_* variable, plus `overrides`: a developer's settings never leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({k: str(v) for k, v in overrides.items()})
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("COLUMNS", "200")
    return env


def run_rag(*args: str, cwd: Path, timeout: float = 300, **env: str | os.PathLike) -> subprocess.CompletedProcess:
    """`rag ARGS` as a user runs it; cwd is a scratch folder so no .env file is picked up."""
    return subprocess.run(
        [str(RAG), *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The CLI contract for a refused input: exit 1, nothing but `error: ...` on one stderr line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# --- the index on disk, read without any model ---------------------------------------------------------------


def live_generation(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class DiskIndex:
    generation: str
    documents: dict[str, str]  # doc_id -> content hash
    passage_ids: tuple[str, ...]
    digest: str  # of manifest documents, passages and vectors: equal digests, equal indexes

    @property
    def passage_doc_ids(self) -> set[str]:
        return {pid.rsplit("#", 1)[0] for pid in self.passage_ids}


def _rows(
    folder: Path, dimension: int, deleted: set[str]
) -> tuple[list[dict], list[dict], list[str], np.ndarray, list[str]]:
    """One folder's live rows (a segment, or a format-1 generation): passages, articles, vector ids, vectors,
    BM25 ids; each file checked against the others."""
    passages = _jsonl(folder / "passages.jsonl")
    articles = _jsonl(folder / "articles.jsonl")
    vector_ids = json.loads((folder / "vector_ids.json").read_text())
    vectors = np.load(folder / "vectors.npy")
    bm25_ids = (
        [row[0] for row in _jsonl(folder / "bm25_tokens.jsonl")] if (folder / "bm25_tokens.jsonl").exists() else []
    )
    pids = [p["passage_id"] for p in passages]
    assert sorted(vector_ids) == sorted(pids), f"{folder.name}: vector ids differ from passage ids"
    assert vectors.shape == (len(pids), dimension), f"{folder.name}: vectors {vectors.shape}"
    assert sorted(bm25_ids) == sorted(pids), f"{folder.name}: BM25 ids differ from passage ids"
    keep = [i for i, pid in enumerate(vector_ids) if pid.rsplit("#", 1)[0] not in deleted]
    return (
        [p for p in passages if p["doc_id"] not in deleted],
        [a for a in articles if a["doc_id"] not in deleted],
        [vector_ids[i] for i in keep],
        vectors[keep],
        [b for b in bm25_ids if b.rsplit("#", 1)[0] not in deleted],
    )


def read_disk_index(index_dir: Path) -> DiskIndex:
    """Read the live generation's files (its segments, or its own folder in format 1) and check they agree with
    each other; fail the test if they do not."""
    gen = live_generation(index_dir)
    manifest = json.loads((gen / "manifest.json").read_text())
    docs = manifest["documents"]
    where = f"generation {gen.name}"
    if manifest["format_version"] == 1:
        folders = [(gen, set())]
    else:
        folders = [(index_dir / "segments" / e["name"], set(e["deleted"])) for e in manifest["segments"]]
        for entry in manifest["segments"]:
            held = {a["doc_id"] for a in _jsonl(index_dir / "segments" / entry["name"] / "articles.jsonl")} - set(
                entry["deleted"]
            )
            assert held == {d for d, r in docs.items() if r["segment"] == entry["name"]}, (
                f"{where}: segment {entry['name']} holds other documents"
            )
    passages, articles, vector_ids, blocks, bm25_ids = [], [], [], [], []
    for folder, deleted in folders:
        p, a, v, vec, b = _rows(folder, manifest["dimension"], deleted)
        passages += p
        articles += a
        vector_ids += v
        blocks.append(vec)
        bm25_ids += b
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, manifest["dimension"]), dtype=np.float32)
    pids = [p["passage_id"] for p in passages]
    assert manifest["count"] == len(passages), (
        f"{where}: manifest count {manifest['count']} != {len(passages)} passages"
    )
    assert sorted(vector_ids) == sorted(pids) and sorted(bm25_ids) == sorted(pids), (
        f"{where}: vector or BM25 ids differ from passage ids"
    )
    assert {p["doc_id"] for p in passages} == set(docs), f"{where}: passages' documents differ from the manifest"
    assert sorted(a["doc_id"] for a in articles) == sorted(docs), f"{where}: articles differ from the manifest"
    for doc_id, record in docs.items():
        assert sum(p["doc_id"] == doc_id for p in passages) == record["passages"], f"{where}: {doc_id} passage count"
    assert len(set(pids)) == len(pids), f"{where}: duplicated passage ids"
    h = hashlib.sha256()
    h.update(json.dumps({d: r["content_hash"] for d, r in sorted(docs.items())}).encode())
    for p in sorted(passages, key=lambda p: p["passage_id"]):
        h.update(json.dumps([p["passage_id"], p["text"]]).encode())
    order = np.argsort(np.array(vector_ids, dtype=object)) if vector_ids else []
    h.update(np.ascontiguousarray(vectors[order] if len(order) else vectors).tobytes())
    return DiskIndex(gen.name, {d: r["content_hash"] for d, r in docs.items()}, tuple(sorted(pids)), h.hexdigest())


# --- a real index, built once by the real CLI ----------------------------------------------------------------


@pytest.fixture(scope="session")
def real_index_template(tmp_path_factory) -> Path:
    """`rag index data/corpus` with the real embedder, once per session; tests copy it before changing it."""
    work = tmp_path_factory.mktemp("real-cli")
    index_dir = work / "index"
    result = run_rag("index", str(CORPUS), cwd=work, RAG_INDEX_DIR=index_dir)
    assert result.returncode == 0, result.stderr
    read_disk_index(index_dir)
    return index_dir


@pytest.fixture
def real_index(real_index_template, tmp_path) -> Path:
    """A private copy of the real index, free to change."""
    target = tmp_path / "index"
    shutil.copytree(real_index_template, target, ignore=shutil.ignore_patterns(".lock"))
    return target
