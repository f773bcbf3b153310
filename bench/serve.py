"""Load test: 32 concurrent clients against `rag serve` on 127.0.0.1 for a bounded time.

The server runs as a subprocess on a free port with an index built from data/corpus. Clients mix search,
extractive ask, generated ask and streamed (SSE) ask. 503 is the designed answer when more than
RAG_QUEUE_MAX requests wait for the one model, so it is counted apart from errors.

The raw baseline is the same Pipeline called in process, one request at a time, before the server starts:
the ratio of server to in-process latency at one client is what HTTP, JSON and the threadpool cost.

    python bench/serve.py [--clients 32] [--seconds 60] [--mix search=4,extractive=3,generate=1,stream=2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, load_questions, peak_rss_mb, print_header, rss_mb, summary_ms, write_json

HOST = "127.0.0.1"  # never anything else: this benchmark opens no port beyond the loopback interface
KINDS = ("search", "extractive", "generate", "stream")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request_once(client: httpx.Client, kind: str, question: str) -> tuple[int, float, float | None, str]:
    """(status, seconds, seconds to first streamed token or None, error text or "")."""
    start = time.perf_counter()
    if kind in ("search", "extractive", "generate"):
        r = client.post("/v1/search", json={"query": question}) if kind == "search" else client.post("/v1/ask", json={"question": question, "mode": kind})
        return r.status_code, time.perf_counter() - start, None, "" if r.status_code == 200 else r.text[:300]
    ttft = None
    error = ""
    with client.stream("POST", "/v1/ask", json={"question": question, "mode": "generate", "stream": True}) as r:
        status = r.status_code
        if status != 200:  # a 503 (or other refusal) is a plain JSON body, not a stream
            r.read()
            return status, time.perf_counter() - start, None, r.text[:300]
        in_error = False
        code = None
        for line in r.iter_lines():
            if line.startswith("event: token") and ttft is None:
                ttft = time.perf_counter() - start
            elif line.startswith("event: error"):
                in_error = True
            elif in_error and line.startswith("data:") and not error:
                error = line[5:].strip()
                try:
                    code = json.loads(error)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = None
        if in_error:
            # The stream began with 200 and then failed. "busy" is the queue's designed timeout
            # (RAG_QUEUE_TIMEOUT_S), the streamed form of a 503, so it is counted with them.
            status = 503 if code == "busy" else 599
    return status, time.perf_counter() - start, ttft, error[:300]


def client_loop(base: str, deadline: float, mix: list[str], questions: list[str], seed: int, out: list[dict[str, Any]], max_requests: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=httpx.Timeout(180.0, connect=10.0)) as client:
        for _ in range(max_requests):
            if time.perf_counter() >= deadline:
                return
            kind = rng.choice(mix)
            try:
                status, seconds, ttft, error = request_once(client, kind, rng.choice(questions))
            except Exception as exc:  # noqa: BLE001  a client bug or a dropped connection: count it, keep the load on
                out.append({"kind": kind, "status": 0, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            out.append({"kind": kind, "status": status, "s": seconds, "ttft_s": ttft, **({"error": error} if error and status != 503 else {})})


def in_process_baseline(index_dir: Path, questions: list[str], per_kind: int) -> dict[str, dict[str, float]]:
    """The Pipeline the server wraps, called directly: the floor for each kind of request."""
    sys.path.insert(0, str(ROOT))
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    pipeline = Pipeline.from_settings(Settings(index_dir=index_dir))
    pipeline.ask(questions[0], mode="generate")  # warm-up
    out: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        times = []
        for i in range(per_kind):
            q = questions[i % len(questions)]
            start = time.perf_counter()
            if kind == "search":
                pipeline.search(q)
            else:
                pipeline.ask(q, mode="extractive" if kind == "extractive" else "generate", on_token=(lambda _: None) if kind == "stream" else None)
            times.append(time.perf_counter() - start)
        out[kind] = summary_ms(times)
    del pipeline
    return out


def wait_ready(base: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited with {proc.returncode} before it was ready")
        try:
            r = httpx.get(base + "/readyz", timeout=5)
            if r.status_code == 200:
                return
            if r.status_code == 503 and "loading" not in r.text:
                raise SystemExit(f"server not ready: {r.text}")
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"rag serve not ready after {timeout_s:.0f}s")


def summarise(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        rows = [r for r in records if r["kind"] == kind]
        ok = [r["s"] for r in rows if r["status"] == 200]
        ttfts = [r["ttft_s"] for r in rows if r.get("ttft_s") is not None and r["status"] == 200]
        by_kind[kind] = {
            "requests": len(rows),
            "ok": len(ok),
            "busy_503": sum(r["status"] == 503 for r in rows),
            "errors": sum(r["status"] not in (200, 503) for r in rows),
            "latency_ok": summary_ms(ok),
            **({"ttft_ok": summary_ms(ttfts)} if kind == "stream" else {}),
        }
    ok_all = [r["s"] for r in records if r["status"] == 200]
    return {
        "requests": len(records),
        "ok": len(ok_all),
        "throughput_ok_per_s": round(len(ok_all) / seconds, 2),
        "busy_503": sum(r["status"] == 503 for r in records),
        "errors": sum(r["status"] not in (200, 503) for r in records),
        "error_statuses": sorted({r["status"] for r in records if r["status"] not in (200, 503)}),
        "error_samples": sorted({r["error"] for r in records if r.get("error")})[:5],
        "latency_ok": summary_ms(ok_all),
        "by_kind": by_kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mix", default="search=4,extractive=3,generate=1,stream=2", help="relative weights of request kinds")
    parser.add_argument("--max-requests", type=int, default=10_000, help="per client, a bound besides the time")
    parser.add_argument("--baseline-n", type=int, default=5, help="in-process requests per kind for the raw baseline")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args()
    mix = [k for part in args.mix.split(",") for k, w in [part.split("=")] for _ in range(int(w))]
    if not set(mix) <= set(KINDS):
        raise SystemExit(f"--mix kinds are {', '.join(KINDS)}")

    print_header("serve")
    questions = [r["question"] for r in load_questions([ROOT / "data/questions/dev_questions.jsonl", ROOT / "data/questions/nato_questions.jsonl"])]
    work = Path(tempfile.mkdtemp(prefix="newsrag-bench-serve-"))
    proc: subprocess.Popen | None = None
    try:
        env = {**os.environ, "RAG_INDEX_DIR": str(work / "index")}
        rag = str(Path(sys.executable).parent / "rag")
        subprocess.run([rag, "index", str(ROOT / "data/corpus")], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)

        baseline = in_process_baseline(work / "index", questions, args.baseline_n)
        print("in-process p50: " + ", ".join(f"{k} {v['p50_ms']:.0f} ms" for k, v in baseline.items()), flush=True)

        port = free_port()
        base = f"http://{HOST}:{port}"
        log = (work / "server.log").open("w")
        proc = subprocess.Popen([rag, "serve", "--host", HOST, "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        with_time = time.perf_counter()
        wait_ready(base, proc, 300)
        ready_s = time.perf_counter() - with_time
        idle_rss = rss_mb(proc.pid)
        print(f"server ready in {ready_s:.1f}s on {base}, RSS {idle_rss} MB", flush=True)

        # One client first: server latency with no queueing, for the ratio against in-process.
        single: list[dict[str, Any]] = []
        with httpx.Client(base_url=base, timeout=180.0) as c:
            for kind in KINDS:
                for i in range(args.baseline_n):
                    status, s, ttft, _ = request_once(c, kind, questions[i % len(questions)])
                    single.append({"kind": kind, "status": status, "s": s, "ttft_s": ttft})
        one_client = {k: summary_ms([r["s"] for r in single if r["kind"] == k and r["status"] == 200]) for k in KINDS}
        ratios = {k: round(one_client[k]["p50_ms"] / baseline[k]["p50_ms"], 3) if baseline[k]["p50_ms"] else None for k in KINDS}
        print("one client p50: " + ", ".join(f"{k} {one_client[k]['p50_ms']:.0f} ms ({ratios[k]}x in-process)" for k in KINDS), flush=True)

        records: list[dict[str, Any]] = []
        rss_samples: list[float] = []
        deadline = time.perf_counter() + args.seconds
        threads = [
            threading.Thread(target=client_loop, args=(base, deadline, mix, questions, seed, records, args.max_requests), daemon=True)
            for seed in range(args.clients)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            rss_samples.append(rss_mb(proc.pid))
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        result = summarise(records, elapsed)
        result.update(
            clients=args.clients, seconds=round(elapsed, 1), mix=args.mix, ready_s=round(ready_s, 1),
            server_rss_idle_mb=idle_rss, server_rss_max_mb=max(rss_samples, default=float("nan")), server_rss_peak_mb=peak_rss_mb(proc.pid),
            in_process_p50=baseline, one_client_p50=one_client, ratio_one_client_vs_in_process=ratios,
        )
        print(f"{args.clients} clients for {elapsed:.1f}s: {result['ok']} ok ({result['throughput_ok_per_s']}/s), {result['busy_503']} busy 503, {result['errors']} errors {result['error_statuses']}")
        for sample in result["error_samples"]:
            print(f"  error sample: {sample}")
        print(f"all ok p50 {result['latency_ok']['p50_ms']:.0f} ms, p95 {result['latency_ok']['p95_ms']:.0f} ms")
        for kind, k in result["by_kind"].items():
            extra = f", first token p50 {k['ttft_ok']['p50_ms']:.0f} ms" if "ttft_ok" in k else ""
            print(f"  {kind:<10} {k['requests']:5d} sent, {k['ok']:5d} ok, {k['busy_503']:4d} 503, {k['errors']:3d} errors; p50 {k['latency_ok']['p50_ms']:.0f} ms p95 {k['latency_ok']['p95_ms']:.0f} ms{extra}")
        print(f"server RSS: idle {idle_rss} MB, max under load {result['server_rss_max_mb']} MB")
        if not args.no_json:
            print("wrote", write_json("serve", result))
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
