"""Load test: 32 concurrent clients against `rag serve` on 127.0.0.1 for a bounded time (issue #14's targets).

The server runs as a subprocess on a free port with an index built from data/corpus, from this checkout's code
(or another's, `--server-root /work/main`, for a before/after with the same clients). Three phases:

1. one client, each kind of request in turn: the unloaded latency every target is a multiple of;
2. the mix: clients send search, extractive ask, generated ask and streamed (SSE) ask at random;
3. generation alone: the same clients sending only generated and streamed asks, in the same proportion, for the
   same time. The model is the bottleneck, so what the mix completes of generate + stream against this run
   says how much the cheap requests cost it (target >= 80%). Phases 2 and 3 alternate in slices (mix, alone,
   alone, mix) so that both meet the same background load; the server's /metrics give the tokens it generated
   in each.

A 503 is the designed refusal (admission, api/admission.py): counted apart from errors, with its latency,
and honoured like a real client would, by waiting Retry-After (cut short at the end of the phase) before the
next request. The load average (`uptime`) is recorded around each phase: the machine is shared.
The in-process baseline is the same Pipeline called directly, one request at a time, before the server starts.

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
from common import ROOT, load_average, load_questions, peak_rss_mb, print_header, rss_mb, summary_ms, write_json

HOST = "127.0.0.1"  # never anything else: this benchmark opens no port beyond the loopback interface
KINDS = ("search", "extractive", "generate", "stream")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request_once(client: httpx.Client, kind: str, question: str) -> tuple[int, float, float | None, str, float]:
    """(status, seconds, seconds to first streamed token or None, error text or "", Retry-After seconds or 0).

    For a generated ask the third item is the answer's own time to first token, None when the model was not used
    (abstained, or quoted at once): those answers take a fraction of a generated one, so the targets compare
    answers the model generated with their like."""
    start = time.perf_counter()
    if kind in ("search", "extractive", "generate"):
        r = (
            client.post("/v1/search", json={"query": question})
            if kind == "search"
            else client.post("/v1/ask", json={"question": question, "mode": kind})
        )
        ttft = None
        if kind == "generate" and r.status_code == 200:
            timings = r.json().get("timings") or {}
            ttft = timings.get("ttft_s") if timings.get("completion_tokens") else None
        return (
            r.status_code,
            time.perf_counter() - start,
            ttft,
            "" if r.status_code == 200 else r.text[:300],
            retry_after(r),
        )
    ttft = None
    error = ""
    with client.stream("POST", "/v1/ask", json={"question": question, "mode": "generate", "stream": True}) as r:
        status = r.status_code
        if status != 200:  # a 503 (or other refusal) is a plain JSON body, not a stream
            r.read()
            return status, time.perf_counter() - start, None, r.text[:300], retry_after(r)
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
            # The stream began with 200 and then failed. "busy" is a refusal after admission (the model
            # queue's RAG_QUEUE_TIMEOUT_S), the streamed form of a 503, so it is counted with them.
            status = 503 if code == "busy" else 599
    return status, time.perf_counter() - start, ttft, error[:300], 1.0 if status == 503 else 0.0


def retry_after(r: httpx.Response) -> float:
    try:
        return float(r.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


def client_loop(
    base: str,
    deadline: float,
    mix: list[str],
    questions: list[str],
    seed: int,
    out: list[dict[str, Any]],
    max_requests: int,
) -> None:
    rng = random.Random(seed)
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive ends them: a client back from a
    # Retry-After sleep must not reuse a connection the server is closing at that moment (reset by peer).
    limits = httpx.Limits(keepalive_expiry=2.0)
    with httpx.Client(base_url=base, timeout=httpx.Timeout(180.0, connect=10.0), limits=limits) as client:
        for _ in range(max_requests):
            if time.perf_counter() >= deadline:
                return
            kind = rng.choice(mix)
            try:
                status, seconds, ttft, error, wait = request_once(client, kind, rng.choice(questions))
            except Exception as exc:
                out.append({"kind": kind, "status": 0, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            out.append(
                {
                    "kind": kind,
                    "status": status,
                    "s": seconds,
                    "ttft_s": ttft,
                    **({"error": error} if error and status != 503 else {}),
                }
            )
            if status == 503:
                # What a polite client does, and what Retry-After is for; without it 32 clients spin on 503s and
                # the benchmark measures its own loop. Jittered so refused clients do not return in step.
                time.sleep(max(0.0, min(wait * rng.uniform(0.5, 1.0), deadline - time.perf_counter())))


def in_process_baseline(index_dir: Path, questions: list[str], per_kind: int) -> dict[str, dict[str, float]]:
    """The Pipeline the server wraps, called directly: the floor for each kind of request."""
    sys.path.insert(0, str(ROOT))
    from rag.answer.pipeline import Pipeline
    from rag.core.settings import Settings

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
                pipeline.ask(
                    q,
                    mode="extractive" if kind == "extractive" else "generate",
                    on_token=(lambda _: None) if kind == "stream" else None,
                )
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
            "latency_503": summary_ms([r["s"] for r in rows if r["status"] == 503]),
            # The answers the model generated (a streamed token, or completion tokens in the reply).
            "latency_generated": summary_ms(
                [r["s"] for r in rows if r["status"] == 200 and r.get("ttft_s") is not None]
            ),
            **({"ttft_ok": summary_ms(ttfts)} if kind == "stream" else {}),
        }
    ok_all = [r["s"] for r in records if r["status"] == 200]
    busy = [r["s"] for r in records if r["status"] == 503]
    return {
        "requests": len(records),
        "ok": len(ok_all),
        "throughput_ok_per_s": round(len(ok_all) / seconds, 2),
        "busy_503": len(busy),
        "latency_503": {**summary_ms(busy), "max_ms": round(max(busy, default=float("nan")) * 1000, 1)},
        "errors": sum(r["status"] not in (200, 503) for r in records),
        "error_statuses": sorted({r["status"] for r in records if r["status"] not in (200, 503)}),
        "error_samples": sorted({r["error"] for r in records if r.get("error")})[:5],
        "latency_ok": summary_ms(ok_all),
        "by_kind": by_kind,
    }


def scrape(base: str) -> dict[str, float]:
    """The server's own count of tokens generated and time the model worked (its /metrics), for each phase."""
    wanted = {"rag_completion_tokens_total": "tokens", "rag_model_busy_seconds": "model_busy_s"}
    out = dict.fromkeys(wanted.values(), 0.0)
    try:
        for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
            name, _, value = line.partition(" ")
            if name in wanted:
                out[wanted[name]] = float(value)
    except (httpx.HTTPError, ValueError):
        pass
    return out


class Phase:
    """One kind of load, run in slices: its records, time and the server's generation counters add up."""

    def __init__(self, name: str, mix: list[str]):
        self.name, self.mix = name, mix
        self.records: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.rss: list[float] = []
        self.loads: list[list[float]] = []
        self.counters = {"tokens": 0.0, "model_busy_s": 0.0}

    def run(
        self,
        base: str,
        proc: subprocess.Popen,
        clients: int,
        seconds: float,
        questions: list[str],
        max_requests: int,
        seed: int,
    ) -> None:
        before = scrape(base)
        self.loads.append(load_average())
        deadline = time.perf_counter() + seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(base, deadline, self.mix, questions, seed * 1000 + i, self.records, max_requests),
                daemon=True,
            )
            for i in range(clients)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            self.rss.append(rss_mb(proc.pid))
            time.sleep(0.5)
        self.elapsed += time.perf_counter() - started
        after = scrape(base)
        for key in self.counters:
            self.counters[key] += after[key] - before[key]

    def result(self, clients: int) -> dict[str, Any]:
        result = summarise(self.records, self.elapsed)
        result.update(
            clients=clients,
            seconds=round(self.elapsed, 1),
            load_avg_before=self.loads[0] if self.loads else [],
            load_avg_after=load_average(),
            load_avg_per_slice=self.loads,
            server_rss_max_mb=max(self.rss, default=float("nan")),
            tokens_per_s=round(self.counters["tokens"] / self.elapsed, 2) if self.elapsed else None,
            model_busy_share=round(self.counters["model_busy_s"] / self.elapsed, 3)
            if self.elapsed
            else None,  # 0 from a server without the gauge
        )
        return result


def print_phase(name: str, r: dict[str, Any]) -> None:
    b = r["latency_503"]
    print(
        f"{name}: {r['clients']} clients for {r['seconds']:.1f}s (load {r['load_avg_before']} -> "
        f"{r['load_avg_after']}): {r['ok']} ok, "
        f"{r['busy_503']} 503 (p50 {b['p50_ms']:.0f} / p95 {b['p95_ms']:.0f} / max {b['max_ms']:.0f} ms), "
        f"{r['errors']} errors {r['error_statuses']}"
    )
    for sample in r["error_samples"]:
        print(f"  error sample: {sample}")
    for kind, k in r["by_kind"].items():
        if not k["requests"]:
            continue
        extra = (
            f", first token p50 {k['ttft_ok']['p50_ms']:.0f} p95 {k['ttft_ok']['p95_ms']:.0f} ms"
            if "ttft_ok" in k
            else ""
        )
        if kind == "generate":
            extra = (
                f"; model-generated {k['latency_generated']['n']}: p50 {k['latency_generated']['p50_ms']:.0f} p95 "
                f"{k['latency_generated']['p95_ms']:.0f} ms"
            )
        print(
            f"  {kind:<10} {k['requests']:5d} sent, {k['ok']:5d} ok, {k['busy_503']:4d} 503, {k['errors']:3d} errors; "
            f"p50 {k['latency_ok']['p50_ms']:.0f} ms p95 {k['latency_ok']['p95_ms']:.0f} ms{extra}"
        )
    print(
        f"  model generated {r['tokens_per_s']} tokens/s, busy {r['model_busy_share']} of the time; server RSS max "
        f"{r['server_rss_max_mb']} MB",
        flush=True,
    )


def targets(
    mixed: dict[str, Any],
    alone: dict[str, Any] | None,
    one_client: dict[str, Any],
    one_ttft: dict[str, float],
    one_generated: dict[str, float],
) -> dict[str, Any]:
    """Issue #14's figures, each beside its target."""
    gen = mixed["by_kind"]["generate"]
    stream = mixed["by_kind"]["stream"]
    model_done = gen["ok"] + stream["ok"]
    alone_done = alone["by_kind"]["generate"]["ok"] + alone["by_kind"]["stream"]["ok"] if alone else None
    ratio = lambda a, b: round(a / b, 3) if a == a and b and b == b else None
    return {
        "errors": mixed["errors"],
        "completed": {k: v["ok"] for k, v in mixed["by_kind"].items()},
        "generation_completed_mixed": model_done,
        "generation_completed_alone": alone_done,
        "generation_mixed_vs_alone": ratio(model_done, alone_done) if alone_done else None,
        "tokens_per_s_mixed_vs_alone": ratio(mixed["tokens_per_s"], alone["tokens_per_s"]) if alone else None,
        "latency_503_ms": mixed["latency_503"],
        "generate_p95_vs_one_client_p50": ratio(gen["latency_ok"]["p95_ms"], one_client["generate"]["p50_ms"]),
        "generated_p95_vs_one_client_p50": ratio(
            gen["latency_generated"]["p95_ms"], one_generated.get("p50_ms", float("nan"))
        ),
        "stream_ttft_p95_vs_one_client_p50": ratio(stream["ttft_ok"]["p95_ms"], one_ttft.get("p50_ms", float("nan"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--mix", default="search=4,extractive=3,generate=1,stream=2", help="relative weights of request kinds"
    )
    parser.add_argument("--no-alone", action="store_true", help="skip the generation-alone phase")
    parser.add_argument(
        "--slices",
        type=int,
        default=4,
        help="the mix and generation alone alternate in this many slices of --seconds each",
    )
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="checkout whose rag/ and api/ the server runs (default: this one)",
    )
    parser.add_argument("--max-requests", type=int, default=10_000, help="per client, a bound besides the time")
    parser.add_argument("--baseline-n", type=int, default=5, help="in-process requests per kind for the raw baseline")
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the in-process baseline (quicker iterations)"
    )
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="2 clients, 4 s, one slice")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.seconds, args.slices, args.no_alone, args.baseline_n = 2, 4.0, 1, True, 1
    weights = {k: int(w) for part in args.mix.split(",") for k, w in [part.split("=")]}
    mix = [k for k, w in weights.items() for _ in range(w)]
    if not set(mix) <= set(KINDS):
        raise SystemExit(f"--mix kinds are {', '.join(KINDS)}")
    alone_mix = [k for k in mix if k in ("generate", "stream")]

    print_header("serve")
    questions = [
        r["question"]
        for r in load_questions(
            [ROOT / "data/questions/dev_questions.jsonl", ROOT / "data/questions/nato_questions.jsonl"]
        )
    ]
    work = Path(tempfile.mkdtemp(prefix="newsrag-bench-serve-"))
    proc: subprocess.Popen | None = None
    server_root = args.server_root.resolve()
    try:
        # Drafting forced on: the default model's measured survival makes generate mode quote (rag/models/drafting.py),
        # and this bench is about sharing the model fairly, so every generated and streamed ask must reach it.
        env = {"RAG_GENERATION_MIN_SURVIVAL": "0", **os.environ, "RAG_INDEX_DIR": str(work / "index")}
        # `python -m rag.cli.main` from the server's checkout, not the venv's `rag` script: that one imports whichever
        # checkout the venv was installed from, which is not this one in a git worktree.
        rag = [sys.executable, "-m", "rag.cli.main"]
        subprocess.run(
            [*rag, "index", str(ROOT / "data/corpus")],
            env=env,
            cwd=server_root,
            check=True,
            capture_output=True,
            timeout=600,
        )

        baseline = {} if args.no_in_process else in_process_baseline(work / "index", questions, args.baseline_n)
        print("in-process p50: " + ", ".join(f"{k} {v['p50_ms']:.0f} ms" for k, v in baseline.items()), flush=True)

        port = free_port()
        base = f"http://{HOST}:{port}"
        log = (work / "server.log").open("w")
        # A session of its own: Linux's autogroup scheduler then shares the CPU between the server and these
        # client threads as between two programs, as if the clients ran elsewhere, instead of letting 32 client
        # threads outweigh the server's few.
        proc = subprocess.Popen(
            [*rag, "serve", "--host", HOST, "--port", str(port)],
            env=env,
            cwd=server_root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with_time = time.perf_counter()
        wait_ready(base, proc, 300)
        ready_s = time.perf_counter() - with_time
        idle_rss = rss_mb(proc.pid)
        print(f"server ({server_root}) ready in {ready_s:.1f}s on {base}, RSS {idle_rss} MB", flush=True)

        # One client first: server latency with no queueing, for the ratio against in-process and the targets.
        single: list[dict[str, Any]] = []
        with httpx.Client(base_url=base, timeout=180.0) as c:
            for kind in KINDS:
                for i in range(args.baseline_n):
                    status, s, ttft, _, _ = request_once(c, kind, questions[i % len(questions)])
                    single.append({"kind": kind, "status": status, "s": s, "ttft_s": ttft})
        one_client = {k: summary_ms([r["s"] for r in single if r["kind"] == k and r["status"] == 200]) for k in KINDS}
        one_ttft = summary_ms([r["ttft_s"] for r in single if r["kind"] == "stream" and r["ttft_s"] is not None])
        one_generated = summary_ms(
            [r["s"] for r in single if r["kind"] == "generate" and r["status"] == 200 and r["ttft_s"] is not None]
        )
        ratios = {
            k: round(one_client[k]["p50_ms"] / baseline[k]["p50_ms"], 3)
            if k in baseline and baseline[k]["p50_ms"]
            else None
            for k in KINDS
        }
        print(
            "one client p50: "
            + ", ".join(f"{k} {one_client[k]['p50_ms']:.0f} ms ({ratios[k]}x in-process)" for k in KINDS)
            + f"; first token {one_ttft['p50_ms']:.0f} ms",
            flush=True,
        )

        # The two loads alternate in slices (mix, alone, alone, mix, ...) so both meet the same background load:
        # the machine is shared, and a minute apart its speed differs by more than the effect measured.
        phases = [Phase("mix", mix)] + (
            [Phase("generation alone", alone_mix)] if not args.no_alone and alone_mix else []
        )
        slices = max(1, args.slices)
        for i in range(slices):
            for phase in phases if i % 2 == 0 else phases[::-1]:
                phase.run(base, proc, args.clients, args.seconds / slices, questions, args.max_requests, seed=i)
        mixed = phases[0].result(args.clients)
        print_phase("mix", mixed)
        alone = phases[1].result(args.clients) if len(phases) > 1 else None
        if alone is not None:
            print_phase("generation alone", alone)
        result = dict(mixed)
        result.update(
            mix=args.mix,
            ready_s=round(ready_s, 1),
            server_root=str(server_root),
            server_rss_idle_mb=idle_rss,
            server_rss_peak_mb=peak_rss_mb(proc.pid),
            in_process_p50=baseline,
            one_client_p50=one_client,
            one_client_ttft=one_ttft,
            ratio_one_client_vs_in_process=ratios,
            one_client_generated=one_generated,
            alone=alone,
            targets=targets(mixed, alone, one_client, one_ttft, one_generated),
        )
        t = result["targets"]
        print(
            f"targets: errors {t['errors']}; generate+stream mixed/alone "
            f"{t['generation_completed_mixed']}/{t['generation_completed_alone']} = {t['generation_mixed_vs_alone']} "
            f"(>= 0.8; tokens/s {t['tokens_per_s_mixed_vs_alone']}); "
            f"503 p95 {t['latency_503_ms']['p95_ms']:.0f} max {t['latency_503_ms']['max_ms']:.0f} ms (< 100); generate "
            f"p95/one-client p50 {t['generate_p95_vs_one_client_p50']}, model-generated only "
            f"{t['generated_p95_vs_one_client_p50']} (<= 3); "
            f"first token p95/one-client p50 {t['stream_ttft_p95_vs_one_client_p50']} (<= 3); server RSS peak "
            f"{result['server_rss_peak_mb']} MB (<= 1500)"
        )
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
