"""Shared helpers for the benchmarks: timing, percentiles, memory, machine facts, JSON output.

Every benchmark reports a ratio against the raw library doing the same work in the same process, because the
machine is shared and absolute figures drift with whatever else runs; a ratio taken over interleaved rounds
does not.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(os.environ.get("BENCH_OUT_DIR") or ROOT / "bench" / "out")  # the smoke test writes elsewhere
SQUAD_DEV = ROOT.parent / "shared" / "benchmarks" / "squad-v2" / "dev-v2.0.json"

# The benchmarks import rag from this checkout even when run as `python bench/x.py`.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """`with timed() as t: ...` then t["s"] holds the elapsed seconds."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """rag.evaluate.scoring's percentile, NaN for no values rather than an exception mid-report."""
    from rag.evaluate.scoring import percentile as rank_percentile  # here, not at the top: keeps bench start-up light

    value = rank_percentile(values, q)
    return float("nan") if value is None else value


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p95_ms": round(percentile(seconds, 95) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 3) if seconds else float("nan"),
    }


def best_of_interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Run each function once per round, alternating, and keep each one's fastest time.

    Alternating puts both sides under the same background load; the minimum is the run least disturbed by
    the other engineers' tests, which is the figure a ratio should compare.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _status_kb(pid: int | str, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory now, in MiB."""
    return round(_status_kb(pid, "VmRSS") / 1024, 1)


def peak_rss_mb(pid: int | str = "self") -> float:
    """Highest resident memory since start or the last reset_peak_rss() (VmHWM), in MiB."""
    hwm = _status_kb(pid, "VmHWM")
    if hwm != hwm and pid == "self":  # NaN: no /proc; ru_maxrss cannot be reset but is the same figure
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(hwm / 1024, 1)


def reset_peak_rss() -> bool:
    """Reset VmHWM so the next peak belongs to the next stage (Linux >= 4.0; False where refused)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """Short commit, with "+dirty" when the tree has changes: figures from uncommitted code say so."""
    from rag.evaluate.report import git_state

    state = git_state(ROOT)
    if not state["git_commit"]:
        return "unknown"
    return state["git_commit"][:7] + ("+dirty" if state["git_dirty"] else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    total_kb = _status_kb_meminfo("MemTotal")
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu_model(),
        "mem_gb": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_avg": load_average(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
    }


def _status_kb_meminfo(field: str) -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def write_json(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    """bench/out/<name>.json with the machine facts beside the figures, so a number never travels alone."""
    folder = out_dir or OUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": machine_info(),
        "command": " ".join([".venv/bin/python", _relative(sys.argv[0]), *sys.argv[1:]]),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return path


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def squad_paragraphs(path: Path = SQUAD_DEV) -> list[tuple[str, str]]:
    """(title, context) of every SQuAD 2.0 dev paragraph, read in place from ../shared (never copied here)."""
    if not path.is_file():
        raise SystemExit(f"SQuAD 2.0 dev not found at {path}; pass --squad PATH")
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        (article["title"].replace("_", " "), para["context"])
        for article in data["data"]
        for para in article["paragraphs"]
    ]


def load_questions(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Questions of the files in order, each id once: nato_questions.jsonl repeats the dev questions."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in paths:
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as fh:
            for row in (json.loads(line) for line in fh if line.strip()):
                key = row.get("id") or row["question"]
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
    return rows


def fmt_ratio(ours: float, raw: float) -> str:
    return f"{ours / raw:.3f}x" if raw else "n/a"


def print_header(title: str) -> None:
    m = machine_info()
    print(f"== {title} — {m['nproc']} cpu ({m['cpu']}), load {m['load_avg']}, commit {m['commit']}", flush=True)


def smoke_index(work: Path) -> Path:
    """The bundled corpus indexed with the default settings into work/index: the index a `--smoke` run reads
    where the real run reads a large one built beforehand (build/squad-index, build/rtqa-index)."""
    from rag.core.settings import Settings
    from rag.ingest.indexing import index_paths
    from rag.models.embedding import build_embedder

    settings = Settings(_env_file=None, index_dir=work / "index")
    index_paths(settings, build_embedder(settings), [ROOT / "data" / "corpus"])
    return settings.index_dir
