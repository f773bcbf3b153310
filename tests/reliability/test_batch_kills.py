"""Issue #15's kill test: `rag index` over 500 articles, committing every 20, is killed at 20 random moments
(seeded). After every kill the live index loads and its files agree, and every article committed before that
run is still there, untouched; the run that finally completes embeds only the articles not committed yet and
ends with exactly the index an uninterrupted run builds: the same documents and syndication groups, passage
ids and texts, vectors (allclose) and BM25 results.

The real CLI and the real MiniLM through ONNX Runtime, float (RAG_EMBEDDING_BACKEND=onnx): its vectors do
not depend on which texts share a batch (int8's dynamic quantisation does, by up to 0.03), and it starts in
about a second where torch takes several. Articles are short (one passage each), so a run takes seconds.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rag.core.settings import Settings
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from tests.reliability.conftest import FULL, RAG, clean_env, read_disk_index, run_rag
from tests.syndication import STORY

ARTICLES = 2000 if FULL else 500
KILLS = 60 if FULL else 20
COMMIT_EVERY = 20
ENV = {
    "RAG_EMBEDDING_BACKEND": "onnx",
    "RAG_COMMIT_EVERY_ARTICLES": str(COMMIT_EVERY),
    "RAG_N_THREADS": "1",
    "RAG_QUERY_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
WORDS = (
    "alliance summit minister council treaty harbour ferry budget election court railway bridge festival museum "
    "river market factory union strike vaccine school farmer drought storm bank senate tariff pipeline"
).split()
QUERIES = ["harbour ferry strike", "tidal power plant Kestrel Bay", "senate tariff vote", "museum festival river"]


def write_corpus(folder: Path) -> None:
    """Short seeded articles, and every 50th one run again by a second outlet (a syndicated copy to fold)."""
    folder.mkdir()
    rng = random.Random(ARTICLES)
    for i in range(ARTICLES):
        if i % 50 == 49:
            story = " ".join(STORY[: 3 + i % 4])
            text = f"Outlet {i % 3} edition\n\n{story} Story number {i // 50}.\n"
        elif i % 50 == 48:
            text = (
                f"Kestrel Bay report\n\nSubscribe for more news. {' '.join(STORY[: 3 + (i + 1) % 4])} "
                f"Story number {i // 50}.\n"
            )
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(12, 22))]
            text = f"Item {i}: the {words[0]} {words[1]}\n\nThe {' '.join(words)} met on day {i}.\n"
        (folder / f"a{i:03d}.txt").write_text(text)


def settings_for(index_dir: Path) -> Settings:
    return Settings(_env_file=None, index_dir=index_dir, embedding_backend="onnx")


def committed(index_dir: Path) -> dict[str, tuple[str, str, int]]:
    """doc id -> (content hash, when it was embedded, passages) in the live generation."""
    if not (index_dir / "CURRENT").exists():
        return {}
    return {d: (r.content_hash, r.indexed_at, r.passages) for d, r in read_manifest(index_dir).documents.items()}


def snapshot(index_dir: Path) -> dict:
    manifest = read_manifest(index_dir)
    index = load_index(settings_for(index_dir), embedding_model=manifest.embedding_model, dimension=manifest.dimension)
    assert len(index.store) == len(index.passages) == manifest.count
    return {
        "documents": {d: (r.content_hash, r.group, r.passages) for d, r in manifest.documents.items()},
        "passages": sorted((p.passage_id, p.text) for p in index.passages),
        "vectors": {pid: v for ids, batch in index.store.iter_vectors() for pid, v in zip(ids, batch)},
        "bm25": [dict(index.lexical.search(q, 10**6)) for q in QUERIES],
    }


@pytest.mark.integration  # the real embedding model
def test_killed_runs_keep_their_commits_and_the_rerun_finishes_the_same_index(tmp_path):
    corpus, reference, index_dir = tmp_path / "corpus", tmp_path / "reference", tmp_path / "index"
    write_corpus(corpus)
    started = time.monotonic()
    result = run_rag("index", str(corpus), cwd=tmp_path, RAG_INDEX_DIR=reference, **ENV)
    whole = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"{ARTICLES} added" in result.stdout and f"{ARTICLES // COMMIT_EVERY} commits" in result.stdout
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a000.txt").write_bytes((corpus / "a000.txt").read_bytes())
    started = time.monotonic()
    assert (
        run_rag("index", str(tmp_path / "one"), cwd=tmp_path, RAG_INDEX_DIR=tmp_path / "startup", **ENV).returncode == 0
    )
    startup = time.monotonic() - started  # the model load and a first commit
    # About one batch's time a kill on average, of which the batch in flight (half a batch, on average) is lost:
    # the kills together commit about 40% of the articles, and the last run does the rest.
    per_kill = max(whole - startup, 1.0) / (ARTICLES // COMMIT_EVERY)

    rng = random.Random(15)
    kills, finished = 0, 0
    for _ in range(KILLS):
        before = committed(index_dir)
        run = subprocess.Popen(
            [str(RAG), "index", str(corpus)],
            cwd=tmp_path,
            env=clean_env(RAG_INDEX_DIR=index_dir, **ENV),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(startup * rng.uniform(0.5, 1.0) + per_kill * rng.uniform(0.0, 2.0))
        run.kill()
        _, stderr = run.communicate()
        if run.returncode == 0:
            finished += 1
        else:
            assert run.returncode == -9, stderr.decode()
            kills += 1
        if not (index_dir / "CURRENT").exists():
            continue  # killed before its first commit: nothing to check yet
        read_disk_index(index_dir)  # the live generation's files agree with each other
        after = committed(index_dir)
        lost = {d: rec for d, rec in before.items() if after.get(d) != rec}
        assert not lost, f"committed articles re-embedded or lost by a killed run: {sorted(lost)[:5]}"
    assert kills >= KILLS - 2 and finished <= 2, (kills, finished)

    done = committed(index_dir)
    assert 0 < len(done) < ARTICLES, "the kills should leave a partly built index"
    result = run_rag("index", str(corpus), cwd=tmp_path, RAG_INDEX_DIR=index_dir, **ENV)
    assert result.returncode == 0, result.stderr
    summary = re.search(
        r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) skipped; (\d+) passages embedded", result.stdout
    )
    added, updated, unchanged, skipped, embedded = map(int, summary.groups())
    reference_docs = committed(reference)
    assert (added, updated, unchanged, skipped) == (ARTICLES - len(done), 0, len(done), 0)
    assert embedded == sum(reference_docs[d][2] for d in reference_docs if d not in done)  # only what was not committed

    print(
        f"{kills} kills, {finished} runs finished; {len(done)} of {ARTICLES} articles committed before the last run, "
        f"which embedded {embedded} passages"
    )
    ours, theirs = snapshot(index_dir), snapshot(reference)
    assert ours["documents"] == theirs["documents"] and ours["passages"] == theirs["passages"]
    assert len({group for _, group, _ in ours["documents"].values()}) < ARTICLES  # the copies were folded
    assert ours["vectors"].keys() == theirs["vectors"].keys()
    for pid, vector in theirs["vectors"].items():
        assert np.allclose(ours["vectors"][pid], vector, atol=1e-5), pid
    for got, want in zip(ours["bm25"], theirs["bm25"]):
        assert got.keys() == want.keys() and all(abs(got[p] - want[p]) < 1e-5 for p in want)
    # Off a terminal: no progress bar, one summary line.
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 1 and not result.stderr.strip()
