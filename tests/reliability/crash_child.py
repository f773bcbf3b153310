"""The writer the crash tests kill: runs one index operation in a child process, optionally dying by SIGKILL
just before its Nth durable filesystem step (an fsync, rename, unlink, mkdir or tree removal).

Children come from a forkserver that has these modules imported already, so a kill loop pays no import
time per child and never forks the (possibly multi-threaded) pytest process itself.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rag.core.settings import Settings
from rag.ingest.indexing import add_document, index_paths, optimize_index, reindex, remove_documents
from rag.storage.manifest import IndexLock
from tests.fakes import HashingEmbedder

DIMENSION = 64
_STEPS = [("os", "fsync"), ("os", "replace"), ("os", "rename"), ("os", "unlink"), ("os", "mkdir"), ("shutil", "rmtree")]


def settings_for(index_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, index_dir=index_dir, **overrides)


def embedder() -> HashingEmbedder:
    return HashingEmbedder(DIMENSION)


def run_op(op: dict[str, Any]) -> int:
    """Run one operation; returns its generation. Also used in-process for the reference runs."""
    settings, emb = settings_for(Path(op["index_dir"]), **op.get("settings", {})), embedder()
    kind = op["op"]
    if kind == "index":
        index, _ = index_paths(settings, emb, [Path(p) for p in op["paths"]])
    elif kind == "add":
        index, _ = add_document(settings, emb, op["name"], Path(op["path"]).read_bytes())
    elif kind == "remove":
        index, _ = remove_documents(settings, emb, op["doc_ids"])
    elif kind == "reindex":
        index, _ = reindex(settings, emb, rebuild=op.get("rebuild", False))
    elif kind == "optimize":
        index = optimize_index(settings, emb)
    else:
        raise ValueError(f"unknown op {kind}")
    return index.generation


def _arm(die_at: int | None, times: list[float] | None = None) -> list[str]:
    """Record durable steps by name (and, given `times`, when each ran); SIGKILL ourselves right before step
    number `die_at` (0-based)."""
    steps: list[str] = []
    modules = {"os": os, "shutil": shutil}
    for module_name, attr in _STEPS:
        module = modules[module_name]
        real = getattr(module, attr)

        def step(*args, _real=real, _name=attr, **kwargs):
            if die_at is not None and len(steps) == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            steps.append(_name)
            if times is not None:
                times.append(time.perf_counter())
            try:
                return _real(*args, **kwargs)
            except FileExistsError:
                steps[-1] = f"{_name}-noop"  # mkdir(exist_ok=True) of a folder already there: nothing changed
                raise

        setattr(module, attr, step)
    return steps


def child_main(op: dict[str, Any], conn: Connection) -> None:
    """Entry point in the child: announce the start, run, report the steps on success, with the seconds from
    the start to the first step that changed the disk (where a write's half-done window opens)."""
    times: list[float] = []
    steps = _arm(op.get("die_at"), times) if op.get("count_steps") or op.get("die_at") is not None else []
    conn.send_bytes(b"started")
    started = time.perf_counter()
    generation = run_op(op)
    first_write = next((t - started for name, t in zip(steps, times) if not name.endswith("-noop")), None)
    conn.send_bytes(json.dumps({"steps": steps, "generation": generation, "first_write_s": first_write}).encode())


def hold_lock(index_dir: str, conn: Connection) -> None:
    """Hold the writer lock until killed, as a writer in the middle of its work would."""
    with IndexLock(Path(index_dir)):
        conn.send_bytes(b"locked")
        time.sleep(600)


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx
