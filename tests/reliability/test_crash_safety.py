"""Crash safety of the on-disk index: kill -9 at random moments and before every durable step of a write,
one writer at a time, readers undisturbed by writers, and a full rebuild from the stored documents.

After every kill: the live generation loads and its files agree (manifest, passages, vectors, BM25), it is
exactly the index before the write or exactly the one the write would have produced, stored document
copies are whole, and running the write again produces the index an uninterrupted run produces.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import rag.storage.segment_files
from rag.core.errors import IndexLockedError
from rag.ingest.indexing import index_paths
from rag.search.retriever import Retriever
from rag.storage.loading import load_index
from tests.reliability import crash_child
from tests.reliability.conftest import FULL, DiskIndex, live_generation, read_disk_index
from tests.reliability.crash_child import child_main, embedder, hold_lock, run_op, settings_for

KILLS = 200 if FULL else 20
RANDOM_DOCS = 120 if FULL else 30
WORDS = (
    "alliance summit minister council treaty harbour ferry budget election court railway bridge festival museum "
    "river market factory union strike vaccine school farmer drought storm bank senate tariff pipeline"
).split()


def make_corpus(folder: Path, docs: int, version: str) -> dict[str, bytes]:
    """`docs` articles; the same ids in every version, different text (so a run updates every document)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(docs)  # same word choices per version: only the version words differ
    out = {}
    for i in range(docs):
        paragraphs = []
        for _ in range(5):
            sentences = []
            for _ in range(5):
                words = [rng.choice(WORDS) for _ in range(rng.randint(9, 16))]
                sentences.append(f"The {words[0]} {' '.join(words[1:])} in edition {version}.")
            paragraphs.append(" ".join(sentences))
        data = (f"Story {i} of edition {version}\n\n" + "\n\n".join(paragraphs) + "\n").encode()
        (folder / f"story{i:03d}.txt").write_bytes(data)
        out[f"story{i:03d}.txt"] = data
    return out


class Scenario:
    """Two editions A and B of one corpus, and the index an uninterrupted run builds for each."""

    def __init__(self, root: Path, docs: int):
        self.root = root
        self.corpus = {v: root / f"corpus-{v}" for v in "AB"}
        self.files = {v: make_corpus(self.corpus[v], docs, v) for v in "AB"}
        self.reference: dict[str, DiskIndex] = {}
        for v in "AB":
            run_op({"op": "index", "index_dir": str(root / f"ref-{v}"), "paths": [str(self.corpus[v])]})
            self.reference[v] = read_disk_index(root / f"ref-{v}")

    def version_of(self, disk: DiskIndex) -> str:
        matches = [v for v, ref in self.reference.items() if ref.digest == disk.digest]
        assert matches, f"live generation {disk.generation} is neither edition A nor B: a half-applied write"
        return matches[0]

    def check_stored_documents(self, index_dir: Path) -> None:
        """Every stored copy is a whole file of one edition, never a torn mix."""
        for path in (index_dir / "documents").glob("*"):
            if path.name.startswith("."):
                continue  # a writer's temp file; the next writer sweeps it
            assert path.read_bytes() in (self.files["A"][path.name], self.files["B"][path.name]), (
                f"torn copy {path.name}"
            )

    def run(
        self, op: dict, *, die_at: int | None = None, count_steps: bool = False, kill_after: float | None = None
    ) -> dict | None:
        """Run `op` in a child; returns its report, or None when it died (by its own hook or our kill)."""
        ctx = crash_child.context()
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child_main, args=({**op, "die_at": die_at, "count_steps": count_steps}, writer))
        proc.start()
        writer.close()
        try:
            assert reader.poll(120), "child did not start"
            assert reader.recv_bytes() == b"started"
            started = time.perf_counter()
            if kill_after is not None:
                time.sleep(kill_after)
                proc.kill()
            proc.join(120)
            self.last_duration = time.perf_counter() - started
            report = reader.recv_bytes() if reader.poll(0) else None
        except EOFError:
            report = None
        finally:
            proc.kill()
            proc.join()
        if report is None:
            assert proc.exitcode == -9, f"writer failed instead of being killed (exit {proc.exitcode})"
            return None
        return json.loads(report)

    def stored_editions(self, index_dir: Path) -> Counter[str]:
        stored = [p for p in (index_dir / "documents").glob("*") if not p.name.startswith(".")]
        return Counter("A" if p.read_bytes() == self.files["A"][p.name] else "B" for p in stored)


def assert_loads(index_dir: Path) -> None:
    emb = embedder()
    index = load_index(settings_for(index_dir), embedding_model=emb.name, dimension=emb.dimension)
    assert len(index.store) == len(index.passages) == index.manifest.count
    assert Retriever(index, emb, settings_for(index_dir)).search("council summit", top_k=3)


def stray_segments(index_dir: Path) -> list[str]:
    """Segment folders no generation on disk names, and segment temp folders."""
    named = {
        e["name"]
        for gen in index_dir.glob("gen-*")
        for e in json.loads((gen / "manifest.json").read_text()).get("segments", [])
    }
    folder = index_dir / "segments"
    return [p.name for p in folder.iterdir() if p.name not in named] if folder.is_dir() else []


def assert_clean(index_dir: Path) -> None:
    assert not list(index_dir.glob("tmp-*")) and not list(index_dir.glob(".*.tmp*")), "leftovers were not swept"
    assert not list((index_dir / "documents").glob(".*.tmp*"))
    assert not stray_segments(index_dir), f"segments no generation names: {stray_segments(index_dir)}"


def leftovers(index_dir: Path) -> bool:
    live = (index_dir / "CURRENT").read_text().strip()
    orphan_gens = [p for p in index_dir.glob("gen-*") if p.name > live]
    temp = (
        list(index_dir.glob("tmp-*"))
        or list(index_dir.glob(".*.tmp*"))
        or list((index_dir / "documents").glob(".*.tmp*"))
    )
    return bool(temp or orphan_gens or stray_segments(index_dir))


def test_kill_9_at_random_moments_leaves_the_last_good_index(tmp_path):
    scenario = Scenario(tmp_path, RANDOM_DOCS)
    index_dir = tmp_path / "index"
    run_op({"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus["A"])]})
    calibration = scenario.run(
        {"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus["B"])]}, count_steps=True
    )
    assert calibration is not None and calibration["first_write_s"] is not None
    duration = scenario.last_duration
    write_share = min(calibration["first_write_s"] / duration, 1.0)
    live = scenario.version_of(read_disk_index(index_dir))
    assert live == "B"

    rng = random.Random(9)
    # Half the kills spread over the whole run (reading, embedding, storing copies, committing), half over the
    # part that writes: that part is a small tail of the run, and uniform kills alone missed it in 1 run of 4.
    fractions = [(i + rng.random()) / KILLS for i in range(KILLS)]
    fractions = [f if i % 2 == 0 else write_share + f * (1 - write_share) for i, f in enumerate(fractions)]
    rng.shuffle(fractions)
    outcomes: Counter[str] = Counter()
    for i, fraction in enumerate(fractions):
        target = "A" if live == "B" else "B"
        report = scenario.run(
            {"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus[target])]},
            kill_after=fraction * duration,
        )
        if report:  # the machine got faster than the calibration run: aim earlier from now on
            duration = min(duration, scenario.last_duration)
        disk = read_disk_index(index_dir)  # asserts the live generation's files agree
        now = scenario.version_of(disk)
        assert now in (live, target)
        assert_loads(index_dir)
        scenario.check_stored_documents(index_dir)
        outcomes["finished" if report else "before-commit" if now == live else "after-commit"] += 1
        # Half-written: temp files or dirs on disk, or copies of the new edition stored while the old is live.
        outcomes["mid-write"] += leftovers(index_dir) or (
            now == live and scenario.stored_editions(index_dir)[target] > 0
        )
        live = now
        if i % 5 == 4 or i == KILLS - 1:  # re-running the interrupted write finishes the job
            run_op({"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus[target])]})
            assert read_disk_index(index_dir).digest == scenario.reference[target].digest
            assert_clean(index_dir)
            live = target
    # The loop must have bitten: some kills landed before the commit, some while files were half-written.
    assert outcomes["before-commit"] >= 1 and outcomes["mid-write"] >= 1, outcomes


@pytest.mark.parametrize(
    "kind", ["update", "upload", "remove", "optimize", "merge"] + (["reindex-rebuild"] if FULL else [])
)
def test_kill_before_every_durable_step_leaves_the_last_good_index(tmp_path, kind):
    scenario = Scenario(tmp_path, 3)
    base = tmp_path / "base"
    for version in "ABA":  # three generations, so the write under test also prunes one
        run_op({"op": "index", "index_dir": str(base), "paths": [str(scenario.corpus[version])]})
    extra, later = tmp_path / "extra.md", tmp_path / "later.md"
    extra.write_text(
        "# Ferry strike ends\n\nThe harbour ferry union ended its strike after the council met on Tuesday.\n"
    )
    later.write_text(
        "# Bridge reopens\n\nThe railway bridge over the river reopened on Friday after the storm repairs.\n"
    )
    if kind in ("optimize", "merge"):  # segments to merge: the edition, an upload, and a tombstone in the first
        run_op({"op": "add", "index_dir": str(base), "name": "extra.md", "path": str(extra)})
        run_op({"op": "remove", "index_dir": str(base), "doc_ids": ["story001"]})
        assert len(json.loads((live_generation(base) / "manifest.json").read_text())["segments"]) == 2
    op = {
        "update": {"op": "index", "paths": [str(scenario.corpus["B"])]},
        "upload": {"op": "add", "name": "extra.md", "path": str(extra)},
        "remove": {"op": "remove", "doc_ids": ["story000", "story002"]},
        "reindex-rebuild": {"op": "reindex", "rebuild": True},
        "optimize": {"op": "optimize"},
        # the upload's commit makes a third segment, one past RAG_MAX_SEGMENTS: a merge follows in the same run
        "merge": {"op": "add", "name": "later.md", "path": str(later), "settings": {"max_segments": 2}},
    }[kind]
    expected_dir = tmp_path / "expected"
    shutil.copytree(base, expected_dir)
    run_op({**op, "index_dir": str(expected_dir)})
    before, after = read_disk_index(base), read_disk_index(expected_dir)

    counting = tmp_path / "counting"
    shutil.copytree(base, counting)
    steps = scenario.run({**op, "index_dir": str(counting)}, count_steps=True)["steps"]
    assert len(steps) > 5
    if kind in ("optimize", "merge"):
        segments = json.loads((live_generation(counting) / "manifest.json").read_text())["segments"]
        assert len(segments) == (1 if kind == "optimize" else 2) and not (kind == "optimize" and segments[0]["deleted"])
    # Reduced form: a crash right after each step that changes the tree (mkdir, rename, unlink, rmtree), skipping
    # the middle of a run of like steps (a tree removal's unlinks); a process kill between a write and its
    # fsync looks the same as one just before the next step.
    changes = {"mkdir", "replace", "rename", "unlink", "rmtree"}

    def worth_a_crash(k: int) -> bool:
        inside_run = 2 <= k < len(steps) and steps[k - 2] == steps[k - 1] == steps[k]
        return k == 0 or (steps[k - 1] in changes and not inside_run)

    points = range(len(steps)) if FULL else [k for k in range(len(steps)) if worth_a_crash(k)]
    for k in points:
        index_dir = tmp_path / f"crash-{k}"
        shutil.copytree(base, index_dir)
        assert scenario.run({**op, "index_dir": str(index_dir)}, die_at=k) is None
        where = f"killed before step {k} ({steps[k]}, after {steps[k - 1] if k else 'nothing'})"
        disk = read_disk_index(index_dir)
        assert disk.digest in (before.digest, after.digest), f"{where}: a half-applied index"
        assert_loads(index_dir)
        if kind not in ("upload", "optimize", "merge"):  # those leave copies of the extra uploads, of no edition
            scenario.check_stored_documents(index_dir)
        if kind == "remove" and disk.digest == after.digest:
            assert not list((index_dir / "documents").glob("story00[02].*")), (
                f"{where}: a deleted document's copy survived"
            )
        if disk.digest == before.digest or kind != "remove":
            run_op({**op, "index_dir": str(index_dir)})  # the retry that follows a failed request
        assert read_disk_index(index_dir).digest == after.digest, f"{where}: the retry did not finish the job"
        if kind == "optimize":
            assert len(json.loads((live_generation(index_dir) / "manifest.json").read_text())["segments"]) == 1, (
                f"{where}: not optimized"
            )
        # The stored copies now agree with the index: a rebuild from them neither revives nor loses a document.
        run_op({"op": "reindex", "index_dir": str(index_dir)})
        assert read_disk_index(index_dir).digest == after.digest, f"{where}: reindex disagrees with the index"
        assert_clean(index_dir)  # a writer has run since the kill (the retry, or this reindex) and swept
        shutil.rmtree(index_dir)


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, corpus_copy):
    ctx = crash_child.context()
    reader, writer = ctx.Pipe(duplex=False)
    index_dir = tmp_path / "index"
    holder = ctx.Process(target=hold_lock, args=(str(index_dir), writer))
    holder.start()
    try:
        assert reader.poll(120) and reader.recv_bytes() == b"locked"
        with pytest.raises(IndexLockedError, match="another process is writing"):
            index_paths(settings_for(index_dir), embedder(), [corpus_copy])
        assert not (index_dir / "CURRENT").exists()
    finally:
        holder.kill()
        holder.join()
    # The lock dies with its holder, even by kill -9: the next writer is not locked out forever.
    index_paths(settings_for(index_dir), embedder(), [corpus_copy])
    read_disk_index(index_dir)


def test_readers_keep_serving_while_a_writer_commits(tmp_path):
    scenario = Scenario(tmp_path, 12)
    index_dir = tmp_path / "index"
    run_op({"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus["A"])]})
    emb, settings = embedder(), settings_for(index_dir)
    old = load_index(settings, embedding_model=emb.name, dimension=emb.dimension)
    old_gen_dir = index_dir / f"gen-{old.generation:06d}"
    retriever = Retriever(old, emb, settings)
    expected = [(r.passage.passage_id, r.score) for r in retriever.search("council harbour ferry", top_k=5)]

    ops = [{"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus[v])]} for v in "BABA"]
    writer = threading.Thread(target=lambda: [scenario.run(op) for op in ops])
    writer.start()
    seen: set[int] = set()
    loads = 0
    while writer.is_alive() or loads == 0:
        loaded = load_index(settings, embedding_model=emb.name, dimension=emb.dimension)  # never a broken generation
        assert len(loaded.store) == len(loaded.passages) == loaded.manifest.count
        assert {p.doc_id for p in loaded.passages} == set(loaded.manifest.documents)
        seen.add(loaded.generation)
        loads += 1
        assert [(r.passage.passage_id, r.score) for r in retriever.search("council harbour ferry", top_k=5)] == expected
    writer.join()
    assert not old_gen_dir.exists(), "the old generation should have been pruned by now"
    assert [(r.passage.passage_id, r.score) for r in retriever.search("council harbour ferry", top_k=5)] == expected
    assert len(seen) >= 2, f"the reader never overlapped a commit (saw generations {seen})"
    assert scenario.version_of(read_disk_index(index_dir)) == "A"


def test_slow_reader_outlived_by_its_generation_loads_the_new_one(tmp_path, monkeypatch):
    # A load that spans two commits finds its generation pruned mid-read; it must read the new one instead.
    scenario = Scenario(tmp_path, 4)
    index_dir = tmp_path / "index"
    run_op({"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus["A"])]})
    real_read, reader_thread, fired = rag.storage.segment_files.read_jsonl, threading.current_thread(), []

    def read_slowly(path, model):
        if threading.current_thread() is reader_thread and not fired:
            fired.append(path)
            for version in "BA":  # two commits while this reader sits between its files
                t = threading.Thread(
                    target=run_op,
                    args=({"op": "index", "index_dir": str(index_dir), "paths": [str(scenario.corpus[version])]},),
                )
                t.start()
                t.join()
        return real_read(path, model)

    monkeypatch.setattr(rag.storage.segment_files, "read_jsonl", read_slowly)
    emb = embedder()
    loaded = load_index(settings_for(index_dir), embedding_model=emb.name, dimension=emb.dimension)
    assert fired and loaded.generation == 3
    assert sorted(p.passage_id for p in loaded.passages) == list(scenario.reference["A"].passage_ids)


def test_reindex_rebuilds_everything_from_stored_documents(tmp_path, corpus_copy):
    index_dir = tmp_path / "index"
    run_op({"op": "index", "index_dir": str(index_dir), "paths": [str(corpus_copy)]})
    upload = tmp_path / "lowmere.md"
    upload.write_text(
        "# Floating library\n\nThe town of Lowmere opened a floating library on its harbour on Saturday.\n"
    )
    run_op({"op": "add", "index_dir": str(index_dir), "name": "lowmere.md", "path": str(upload)})
    # Re-sent under another file type: the older copy must not come back on a rebuild.
    newer = tmp_path / "lowmere.txt"
    newer.write_text("Floating library\n\nThe town of Lowmere opened a floating library with four thousand books.\n")
    run_op({"op": "add", "index_dir": str(index_dir), "name": "lowmere.txt", "path": str(newer)})
    upload.unlink()
    newer.unlink()
    before = read_disk_index(index_dir)
    assert "lowmere" in before.documents

    for path in [*index_dir.glob("gen-*"), index_dir / "segments"]:
        shutil.rmtree(path)
    (index_dir / "CURRENT").unlink()
    run_op({"op": "reindex", "index_dir": str(index_dir)})
    after = read_disk_index(index_dir)
    assert after.documents == before.documents and after.passage_ids == before.passage_ids
    assert after.digest == before.digest
