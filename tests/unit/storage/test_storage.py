"""Writing an index generation when the disk says no (#17 item 12) and making it durable (#17 item 13):
a full disk or a refused permission is a typed error (API 507/503, one CLI line), leaves no temp folder or
unnamed segment and keeps the live generation; every new folder (segment, generation) and its parent are
fsynced before the next step names them."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import rag.models.embedding
import rag.storage.manifest
import rag.storage.segment_files
import rag.storage.segments
from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.core.errors import StorageError, StorageFullError
from rag.ingest.indexing import add_document, index_paths, remove_documents
from tests.fakes import ScriptedGenerator

STORY = (
    b"Harbour Town Opens Floating Library\n\n"
    b"The town of Lowmere opened a floating library on its harbour on Saturday.\n"
)


def refuse(monkeypatch, code: int, module=rag.storage.segment_files, target: str = "write_jsonl") -> None:
    """Make one write inside a segment (or, given the target, of a generation) fail the way the OS would."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), "passages.jsonl")

    monkeypatch.setattr(module, target, fail)


def leftovers(root: Path) -> list[str]:
    """Temp files and folders, and segments no generation names."""
    named = {e.name for gen in root.glob("gen-*") for e in rag.storage.manifest.manifest_at(gen).segments}
    segments = root / "segments"
    stray = [p.name for p in segments.iterdir() if p.name not in named] if segments.is_dir() else []
    return sorted([p.name for p in root.iterdir() if p.name.startswith(("tmp-", ".")) and p.name != ".lock"] + stray)


@pytest.fixture
def indexed(settings, hashing_embedder, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    return index


@pytest.mark.parametrize(("code", "kind"), [(errno.ENOSPC, StorageFullError), (errno.EACCES, StorageError)])
def test_a_refused_write_is_a_typed_error_and_leaves_the_live_generation(
    settings, hashing_embedder, indexed, monkeypatch, code, kind
):
    live = (settings.index_dir / "CURRENT").read_text()
    gens = sorted(p.name for p in settings.index_dir.glob("gen-*"))
    refuse(monkeypatch, code)
    with pytest.raises(kind, match=os.strerror(code)) as caught:
        add_document(settings, hashing_embedder, "lowmere.txt", STORY)
    assert str(settings.index_dir) in str(caught.value) and (code != errno.EACCES or type(caught.value) is StorageError)
    refuse(monkeypatch, code, rag.storage.segments, "sync_tree")  # a removal writes no segment, only a generation
    with pytest.raises(kind):
        remove_documents(settings, hashing_embedder, ["001_d33884d0ecc97606"])
    assert (settings.index_dir / "CURRENT").read_text() == live
    assert sorted(p.name for p in settings.index_dir.glob("gen-*")) == gens
    assert leftovers(settings.index_dir) == []


def test_a_failure_after_the_rename_removes_the_generation_that_never_went_live(
    settings, hashing_embedder, indexed, monkeypatch
):
    live = (settings.index_dir / "CURRENT").read_text()
    gens = sorted(p.name for p in settings.index_dir.glob("gen-*"))
    refuse(
        monkeypatch, errno.ENOSPC, rag.storage.segments, "write_atomic"
    )  # the CURRENT flip itself fails, after the segment was written
    with pytest.raises(StorageFullError):
        add_document(settings, hashing_embedder, "lowmere.txt", STORY)
    assert (settings.index_dir / "CURRENT").read_text() == live
    assert sorted(p.name for p in settings.index_dir.glob("gen-*")) == gens and leftovers(settings.index_dir) == []


@pytest.mark.parametrize(
    ("code", "status", "name"),
    [(errno.ENOSPC, 507, "insufficient_storage"), (errno.EACCES, 503, "storage_unavailable")],
)
def test_the_api_answers_507_or_503_with_the_os_message(
    settings, hashing_embedder, prompts, indexed, monkeypatch, code, status, name
):
    app = create_app(settings, Pipeline(settings, indexed, hashing_embedder, ScriptedGenerator("x"), prompts))
    refuse(monkeypatch, code)
    with TestClient(app) as client:
        r = client.post("/v1/documents", files={"file": ("lowmere.txt", STORY, "text/plain")})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == name and os.strerror(code) in error["message"] and "Traceback" not in r.text
        assert client.get("/v1/documents").json()["total"] == 5
    assert leftovers(settings.index_dir) == []


def test_the_cli_prints_one_line(settings, hashing_embedder, corpus_copy, monkeypatch, capsys):
    from rag.cli.main import main

    monkeypatch.setattr(rag.models.embedding, "build_embedder", lambda s: hashing_embedder)
    refuse(monkeypatch, errno.ENOSPC)
    monkeypatch.setattr(sys, "argv", ["rag", "--index-dir", str(settings.index_dir), "index", str(corpus_copy)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith("error: cannot update the index at")
        and "No space left on device" in lines[0]
    )
    assert leftovers(settings.index_dir) == []


def test_each_new_folder_and_its_parent_are_fsynced_before_current_names_them(
    settings, hashing_embedder, corpus_copy, monkeypatch
):
    events: list[tuple[str, str]] = []
    real_fsync_dir, real_replace = rag.storage.manifest.fsync_dir, os.replace
    record = lambda path: (events.append(("fsync", str(path))), real_fsync_dir(path))[1]
    for module in (rag.storage.manifest, rag.storage.segments, rag.storage.segment_files):
        monkeypatch.setattr(module, "fsync_dir", record)
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (events.append(("replace", f"{src} -> {dst}")), real_replace(src, dst))[1]
    )
    index_paths(settings, hashing_embedder, [corpus_copy])

    root = settings.index_dir
    gen = root / (root / "CURRENT").read_text()
    (segment,) = [root / "segments" / e.name for e in rag.storage.manifest.manifest_at(gen).segments]

    def renamed_at(final: Path) -> tuple[int, Path]:
        (at,) = [i for i, (kind, what) in enumerate(events) if kind == "replace" and what.endswith(f" -> {final}")]
        return at, Path(events[at][1].split(" -> ")[0])

    (flip_at,) = [
        i for i, (kind, what) in enumerate(events) if kind == "replace" and what.endswith(f" -> {root / 'CURRENT'}")
    ]
    for final in (segment, gen):
        rename_at, tmp = renamed_at(final)
        folders = [tmp] + [tmp / p.relative_to(final) for p in final.rglob("*") if p.is_dir()]
        synced_before = {what for kind, what in events[:rename_at] if kind == "fsync"}
        assert {str(f) for f in folders} <= synced_before, f"a folder of {final.name} was not fsynced before its rename"
        assert ("fsync", str(final.parent)) in events[rename_at:flip_at], (
            f"{final.parent} was not fsynced between the rename of {final.name} and the flip"
        )
    assert renamed_at(segment)[0] < renamed_at(gen)[0] < flip_at, (
        "the segment must be in place before a manifest names it"
    )
    # New folders outside the generation: the index folder itself, and documents/ and segments/ inside it.
    seg_at = renamed_at(segment)[0]
    assert ("fsync", str(root.parent)) in events[:seg_at], "the new index folder's own name was not made durable"
    assert ("fsync", str(root)) in events[:seg_at], (
        "the new documents/ and segments/ folders' names were not made durable"
    )
