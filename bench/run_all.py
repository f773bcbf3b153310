"""`make bench`: every benchmark in its own process, then the figures table in bench/README.md.

Each benchmark runs as a subprocess so its peak memory is its own and one failure does not hide the others.
Quick sizes by default (a few minutes on 2 cores, more when the machine is shared); --full for the sizes the
README's targets name (1M vectors, every question, 3 rounds). Environment overrides, for CI or a laptop:

    BENCH_SEARCH_SIZES=10000,100000  BENCH_SEARCH_E2E=100000  BENCH_ANSWER_LIMIT=16  BENCH_ANSWER_MAX_NEW_TOKENS=64
    BENCH_INDEX_ROUNDS=2  BENCH_INDEX_LIMIT=300  BENCH_SERVE_SECONDS=60  BENCH_SERVE_CLIENTS=32  BENCH_COLD_ROUNDS=2

    python bench/run_all.py [--full] [--only index,search] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from common import OUT_DIR, ROOT, machine_info

BENCH = ROOT / "bench"
README = BENCH / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
ORDER = ("index", "search", "answer", "serve", "coldstart")
# Every script under bench/ that runs on its own, each with a --smoke mode (tiny sizes): `run_all.py --smoke` and
# tests/integration/test_bench_smoke.py run them all, so a benchmark that rots fails the tests, not the next
# person to time something. ("index --commit-one" is commit_one's path in the figures run.)
SMOKE = (
    "index",
    "search",
    "answer",
    "serve",
    "coldstart",
    "backends",
    "batching",
    "calibrate",
    "commit_one",
    "dedup",
    "headline_questions",
    "reader",
    "retrieval",
    "train_decision",
    "judge",
    "check_claims",
)


def commands(full: bool) -> dict[str, list[str]]:
    env = os.environ.get
    search = ["--sizes", env("BENCH_SEARCH_SIZES", "10000,50000,100000"), "--e2e", env("BENCH_SEARCH_E2E", "100000")]
    if full:
        search += ["--full", "--ef-search", "128,64,256", "--ivf"]
    answer_limit = env("BENCH_ANSWER_LIMIT", "" if full else "16")
    answer_tokens = env("BENCH_ANSWER_MAX_NEW_TOKENS", "" if full else "64")
    return {
        "index": ["--rounds", env("BENCH_INDEX_ROUNDS", "3" if full else "2")]
        + (["--limit", env("BENCH_INDEX_LIMIT", "")] if env("BENCH_INDEX_LIMIT") else []),
        "search": search,
        "answer": (["--limit", answer_limit] if answer_limit else [])
        + (["--max-new-tokens", answer_tokens] if answer_tokens else []),
        "serve": ["--seconds", env("BENCH_SERVE_SECONDS", "60"), "--clients", env("BENCH_SERVE_CLIENTS", "32")],
        "coldstart": ["--rounds", env("BENCH_COLD_ROUNDS", "2")],
    }


def run(name: str, extra: list[str]) -> tuple[int, float]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *extra]
    print(f"\n$ {' '.join(['python', f'bench/{name}.py', *extra])}", flush=True)
    start = time.perf_counter()
    with (OUT_DIR / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:  # echo live and keep a copy: a long run is watched, then read back
            sys.stdout.write(line)
            log.write(line)
        proc.wait()
    return proc.returncode, time.perf_counter() - start


def load(name: str) -> dict[str, Any] | None:
    path = OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def render(results: dict[str, dict[str, Any] | None], ran: dict[str, str]) -> str:
    m = machine_info()
    lines = [
        f"Latest run: {m['date'][:10]}, commit `{m['commit']}`, {m['nproc']} CPUs ({m['cpu']}), {m['mem_gb']} GB, "
        f"load average at the end {m['load_avg']} (the machine is shared: compare ratios, not absolute times).",
        "",
        "| Benchmark | Figure | Ours | Raw library | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    row = lambda *cells: lines.append("| " + " | ".join(str(c) for c in cells) + " |")

    if (r := results.get("index")) is not None:
        pps = r["passages_per_s"]
        spread = r.get("ratio_index_vs_raw_per_slice")
        note = f" (per slice {spread['min']:.3f}..{spread['max']:.3f})" if spread else ""
        row(
            "index",
            f"passages/s, `index_paths` on {r['passages']} SQuAD passages, {r.get('slices', 1)} slices x {r['rounds']} "
            "rounds",
            f"{pps['index']:.1f}",
            f"{pps['raw']:.1f} (`encode`)",
            f"{r['ratio_index_vs_raw']:.3f}{note}",
            ">= 0.9",
            met(r["target_met"]),
        )
        row(
            "index",
            "passages/s, `embed_passages` only",
            f"{pps['embed']:.1f}",
            f"{pps['raw']:.1f}",
            f"{r['ratio_embed_vs_raw']:.3f}",
            "",
            "",
        )
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in r["index_stages_s"].items())
        row("index", "where `index_paths` time goes", stages, "", "", "", "")
        row(
            "index",
            "peak RSS over baseline (MB)",
            f"{r['peak_rss_over_baseline_mb']['index']:.0f}",
            f"{r['peak_rss_over_baseline_mb']['raw']:.0f}",
            "",
            "",
            "",
        )
    if (r := results.get("search")) is not None:
        for ix in r["indexes"]:
            label = ix["kind"] + (
                f" M={ix['m']} ef={ix['ef_search']}"
                if ix["kind"] == "hnsw"
                else f" nprobe={ix.get('nprobe')}"
                if ix["kind"] == "ivf"
                else ""
            )
            ours = (
                f"p50 {ix['ours']['p50_ms']:.2f} / p99 {ix['ours']['p99_ms']:.2f} ms" if "ours" in ix else "(raw only)"
            )
            row(
                "search",
                f"{ix['n']:,} {label}: recall@10 {ix['recall_at_10']:.3f}, build {ix['build_s']:.1f}s, "
                f"+{ix['memory_mb']:.0f} MB",
                ours,
                f"p50 {ix['raw']['p50_ms']:.2f} / p99 {ix['raw']['p99_ms']:.2f} ms",
                ix.get("ratio_p50", ""),
                "",
                "",
            )
        q = r["query_embedding"]
        row(
            "search",
            "query embedding (MiniLM, one short question)",
            f"p50 {q['ours']['p50_ms']:.1f} ms",
            f"p50 {q['raw']['p50_ms']:.1f} ms",
            q["ratio_p50"],
            "",
            "",
        )
        for e in r["end_to_end"]:
            limit = 15 if e["n"] <= 100_000 else 25
            recall = e.get("dense_recall_at_10")
            ok = e["with_query_embedding"]["p50_ms"] <= limit and (recall is None or recall >= 0.95)
            row(
                "search",
                f"end-to-end `Retriever.search` at {e['n']:,} ({e['kind']}), dense+BM25+RRF",
                f"p50 {e['with_query_embedding']['p50_ms']:.1f} ms with query embedding; "
                f"{e['given_vector']['p50_ms']:.1f} ms given the vector"
                + (f"; recall@10 {recall:.3f}" if recall is not None else ""),
                "",
                "",
                f"p50 <= {limit} ms, recall >= 0.95",
                met(ok),
            )
    if (r := results.get("answer")) is not None:
        s = r["summary"]
        row(
            "answer",
            f"TTFT p50, {s['generated']} of {s['questions']} questions generated",
            f"{s['ours_ttft']['p50_ms']:.0f} ms (retrieval+evidence {s['ours_retrieval']['p50_ms']:.0f})",
            f"{s['raw_ttft']['p50_ms']:.0f} ms",
            s["ratio_ttft"],
            "<= 1.15",
            met(s["target_ttft_met"]),
        )
        row(
            "answer",
            "TTFT of the generation step alone",
            f"{s['ours_generation_ttft']['p50_ms']:.0f} ms",
            f"{s['raw_ttft']['p50_ms']:.0f} ms",
            s["ratio_generation_ttft"],
            "",
            "",
        )
        row(
            "answer",
            "total p50 (ours includes verification)",
            f"{s['ours_total']['p50_ms']:.0f} ms",
            f"{s['raw_total']['p50_ms']:.0f} ms",
            s["ratio_total"],
            "",
            "",
        )
        row(
            "answer",
            "prompt tokens (mean / max)",
            f"{s['prompt_tokens_mean']} / {s['prompt_tokens_max']}",
            "",
            "",
            "max <= 900",
            met(s["target_prompt_met"]),
        )
        row(
            "answer",
            "tokens/s (median; prefill included, as Timings reports)",
            s["tokens_per_s_ours_median"],
            s["tokens_per_s_raw_median"],
            "",
            "",
            "",
        )
        row(
            "answer",
            f"KV prefix reuse (mean {s['shared_prefix_tokens_mean']} shared tokens)",
            f"TTFT {s['raw_ttft']['p50_ms']:.0f} ms reused",
            f"{s['fresh_ttft']['p50_ms']:.0f} ms after reset()",
            f"saves {s['kv_reuse_saving'] * 100:.0f}%",
            "",
            "",
        )
    if (r := results.get("serve")) is not None:
        row(
            "serve",
            f"{r['clients']} clients, {r['seconds']:.0f}s, mix {r['mix']}",
            f"{r['ok']} ok = {r['throughput_ok_per_s']}/s; p50 {r['latency_ok']['p50_ms']:.0f} / p95 "
            f"{r['latency_ok']['p95_ms']:.0f} ms",
            "",
            "",
            "",
            "",
        )
        row(
            "serve",
            "503 busy / errors",
            f"{r['busy_503']} / {r['errors']} {r['error_statuses'] or ''}",
            "",
            "",
            "0 errors",
            met(r["errors"] == 0),
        )
        for kind, k in r["by_kind"].items():
            extra = f"; first token p50 {k['ttft_ok']['p50_ms']:.0f} ms" if "ttft_ok" in k else ""
            row(
                "serve",
                f"{kind} under load",
                f"{k['ok']}/{k['requests']} ok, {k['busy_503']} 503; p50 {k['latency_ok']['p50_ms']:.0f} / p95 "
                f"{k['latency_ok']['p95_ms']:.0f} ms{extra}",
                "",
                "",
                "",
                "",
            )
        for kind, ratio in r["ratio_one_client_vs_in_process"].items():
            if kind in r["in_process_p50"]:
                row(
                    "serve",
                    f"{kind}, one client vs in-process Pipeline (p50)",
                    f"{r['one_client_p50'][kind]['p50_ms']:.0f} ms",
                    f"{r['in_process_p50'][kind]['p50_ms']:.0f} ms",
                    ratio,
                    "",
                    "",
                )
        row(
            "serve",
            "server RSS (idle / max under load)",
            f"{r['server_rss_idle_mb']:.0f} / {r['server_rss_max_mb']:.0f} MB",
            "",
            "",
            "<= 1500",
            met(r["server_rss_max_mb"] <= 1500),
        )
        if (t := r.get("targets")) is not None:  # issue #14
            if t["generation_mixed_vs_alone"] is not None:
                row(
                    "serve",
                    "generate + stream completed, mix vs generation alone",
                    t["generation_completed_mixed"],
                    t["generation_completed_alone"],
                    t["generation_mixed_vs_alone"],
                    ">= 0.8",
                    met(t["generation_mixed_vs_alone"] >= 0.8),
                )
            b = t["latency_503_ms"]
            row(
                "serve",
                "503 latency p50 / p95 / max",
                f"{b['p50_ms']:.0f} / {b['p95_ms']:.0f} / {b['max_ms']:.0f} ms",
                "",
                "",
                "< 100 ms",
                met(b["max_ms"] < 100 or b["n"] == 0),
            )
            row(
                "serve",
                "generate p95 under load vs one-client p50",
                f"{r['by_kind']['generate']['latency_ok']['p95_ms']:.0f} ms",
                f"{r['one_client_p50']['generate']['p50_ms']:.0f} ms",
                t["generate_p95_vs_one_client_p50"],
                "<= 3",
                met((t["generate_p95_vs_one_client_p50"] or 99) <= 3),
            )
            row(
                "serve",
                "first streamed token p95 under load vs one-client p50",
                f"{r['by_kind']['stream']['ttft_ok']['p95_ms']:.0f} ms",
                f"{r['one_client_ttft']['p50_ms']:.0f} ms",
                t["stream_ttft_p95_vs_one_client_p50"],
                "<= 3",
                met((t["stream_ttft_p95_vs_one_client_p50"] or 99) <= 3),
            )
    if (r := results.get("coldstart")) is not None:
        o, w = r["ours"], r["raw"]
        row(
            "coldstart",
            "process spawn to first token",
            f"{o['first token']:.2f}s",
            f"{w['first token']:.2f}s",
            r["ratio_first_token"],
            "",
            "",
        )
        steps, prev = [], 0.0
        for name, at in o.items():
            if name == "retrieval (in ask)":
                continue
            steps.append(f"{name} +{at - prev:.2f}")
            prev = at
        row("coldstart", "ours, stage by stage (s)", "; ".join(steps), "", "", "", "")
        row("coldstart", "`rag ask --json` wall time", f"{r['cli_ask_wall_s']:.2f}s", "", "", "", "")
        for c in r["lazy_imports"]:
            loaded = ", ".join(k for k, v in c["loaded"].items() if v) or "none"
            rule = "no torch, no llama_cpp"  # `rag search` too since issue 26: ONNX embeds the query
            row("coldstart", f"`{c['command']}` loads", f"{loaded} ({c['wall_s']:.2f}s)", "", "", rule, met(c["ok"]))
        asked = r.get("ask_backends")
        if asked:
            row(
                "coldstart",
                "`rag ask`, model not asked: wall (best) / peak RSS",
                f"onnx {asked['onnx']['wall_best_s']:.2f}s / {asked['onnx']['peak_rss_mb']:.0f} MB",
                f"torch {asked['torch']['wall_best_s']:.2f}s / {asked['torch']['peak_rss_mb']:.0f} MB",
                f"{asked['ratio_best']:.3f}",
                "<= 0.35, <= 500 MB",
                met(asked["ratio_best"] <= 0.35 and asked["onnx"]["peak_rss_mb"] <= 500),
            )
    lines += ["", "Commands of this run:", ""]
    lines += [f"    {cmd}" for cmd in ran.values()]
    return "\n".join(lines)


def smoke(names: list[str]) -> None:
    """Each script with --smoke in its own process, its figures in a temporary BENCH_OUT_DIR; exits non-zero
    naming every script that failed."""
    import tempfile

    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as out:
        env = {**os.environ, "BENCH_OUT_DIR": out, "PYTHONPATH": str(ROOT)}
        for name in names:
            start = time.perf_counter()
            cmd = [sys.executable, str(BENCH / f"{name}.py"), "--smoke"]
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            print(f"-- {name} --smoke: exit {done.returncode} after {time.perf_counter() - start:.0f}s", flush=True)
            if done.returncode != 0:
                failed.append(name)
                print((done.stdout + done.stderr)[-3000:], flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def update_readme(table: str) -> None:
    text = README.read_text() if README.is_file() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="1M vectors, every question, 3 index rounds")
    parser.add_argument("--only", default=",".join(ORDER), help=f"comma-separated subset of {', '.join(ORDER)}")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the figures table in bench/README.md")
    parser.add_argument("--render-only", action="store_true", help="rebuild the README table from bench/out/*.json")
    parser.add_argument("--smoke", action="store_true", help="every bench script at tiny sizes (no README change)")
    args = parser.parse_args()
    if args.smoke:
        smoke(args.only.split(",") if args.only != ",".join(ORDER) else list(SMOKE))
        return
    chosen = [n for n in ORDER if n in args.only.split(",")]
    ran: dict[str, str] = {}
    failed: list[str] = []
    if not args.render_only:
        for name, extra in commands(args.full).items():
            if name not in chosen:
                continue
            code, seconds = run(name, extra)
            ran[name] = " ".join([".venv/bin/python", f"bench/{name}.py", *extra])
            print(f"-- {name}: exit {code} after {seconds:.0f}s", flush=True)
            if code != 0:
                failed.append(name)
    results = {name: load(name) for name in ORDER}
    for name, r in results.items():
        if r is not None and name not in ran:
            ran[name] = r.get("command", name)
    table = render(results, {n: ran[n] for n in ORDER if n in ran})
    (OUT_DIR / "summary.md").write_text(table + "\n")
    if not args.no_readme:
        update_readme(table)
        print(f"\nfigures written to {README.relative_to(ROOT)}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
