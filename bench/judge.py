"""The judge held out: its heads on the half-B sets it never trained on, the claim suite, and what it costs.

    .venv/bin/python bench/judge.py [--judge models/judge] [--shared ../shared] [--claims
    data/claims/claims_heldout.jsonl]
    .venv/bin/python bench/judge.py --smoke      # seconds: a few pairs per set, a few claims, a few rounds

Claim verdicts use the rule of rag/models/judge.py's `verdict` over the gold article's sentences that share
most content words with the claim (top --top), as a retrieval step would hand them over. Latency is judging
20 (question, sentence) pairs, p50 of --rounds, on --threads threads, each variant in its own process so its
resident memory and cold start are its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, rss_mb, write_json

from rag.core.errors import ModelMissingError
from rag.evaluate.judge_data import Recipe, build, read_rtqa_article, sentences_of
from rag.evaluate.judge_measure import measure
from rag.ingest.corpus import load_article
from rag.models.judge import OnnxJudge, judge_path, judge_text, read_meta, verdict
from rag.text.tokens import content_terms

RTQA = "benchmarks/realtimeqa-2022-summer/corpus"

LABELS = ("supported", "contradicted", "not_found")


def article_sentences(doc_id: str, shared: Path) -> list[str]:
    """The article's sentences, each with its title and date as the judge reads them."""
    bundled = ROOT / "data" / "corpus" / f"{doc_id}.txt"
    if bundled.is_file():
        art = load_article(bundled)
        return [
            judge_text(art.meta.title, s, art.meta.date) for _, _, s in sentences_of(art.text) if len(s.split()) >= 4
        ]
    title, date, sents = read_rtqa_article(shared / RTQA / f"{doc_id}.txt")
    return [judge_text(title, s, date) for s in sents]


def judged_claims(
    judge: OnnxJudge, claims: list[dict], shared: Path, *, top: int
) -> list[tuple[dict, list[str], list]]:
    """Each claim with its candidate quotes (the gold article's `top` sentences by shared content words) and
    the judge's relation for each: computed once, so thresholds can be tried without the model."""
    out = []
    for c in claims:
        sents = article_sentences(c["doc_id"], shared)
        terms = content_terms(c["claim"])
        best = sorted(sents, key=lambda s: -len(terms & content_terms(s)))[:top]
        out.append((c, best, judge.relation(c["claim"], best)))
    return out


def claim_suite(judged: list[tuple[dict, list[str], list]], *, support: float, contradict: float) -> dict:
    rows = []
    for c, best, rel in judged:
        got, at = verdict(rel, support=support, contradict=contradict)
        rows.append({**c, "got": got, "quote": best[at][:160] if at is not None else None})
    by = {e: [r for r in rows if r["expected"] == e] for e in LABELS}
    wrongly_supported = [r for r in rows if r["expected"] != "supported" and r["got"] == "supported"]
    kinds = sorted({r["kind"] for r in rows})
    return {
        "claims": len(rows),
        "accuracy": round(sum(r["got"] == r["expected"] for r in rows) / max(1, len(rows)), 3),
        **{f"{label}_recall": f"{sum(r['got'] == label for r in by[label])}/{len(by[label])}" for label in LABELS},
        "wrongly_supported": f"{len(wrongly_supported)}/{len(rows) - len(by['supported'])}",
        "by_kind": {
            k: f"{sum(r['got'] == r['expected'] for r in rows if r['kind'] == k)}/{sum(r['kind'] == k for r in rows)}"
            for k in kinds
        },
        "errors": [
            {k: r[k] for k in ("id", "claim", "expected", "got", "quote")} for r in rows if r["got"] != r["expected"]
        ],
    }


def tune(judged: list[tuple[dict, list[str], list]]) -> tuple[float, float]:
    """Thresholds from the dev claims: fewest unsupported claims judged supported (the issue's hard limit),
    then most right; ties to the middle of the grid's best run."""
    grid = [round(x, 2) for x in np.arange(0.3, 0.96, 0.05)]
    scored = []
    for sup in grid:
        for con in grid:
            suite = claim_suite(judged, support=sup, contradict=con)
            wrong = int(suite["wrongly_supported"].split("/")[0])
            scored.append((wrong, -suite["accuracy"], abs(sup - 0.6) + abs(con - 0.5), sup, con))
    best = min(scored)
    return best[3], best[4]


def latency_child(path: Path, variant: str, threads: int, rounds: int) -> dict:
    """Run in a fresh process: RSS added by onnxruntime + tokenizers and then by the judge, cold start (load +
    first call), and p50 of 20 pairs in wall and in CPU time (on a shared machine the wall time is the
    neighbours' as much as ours; CPU time over the threads used bounds what idle cores take)."""
    start_rss = rss_mb()
    import onnxruntime  # noqa: F401  the runtime's own libraries, counted apart from the judge's model
    import tokenizers  # noqa: F401

    before = rss_mb()
    sents = [s for _, _, s in sentences_of(load_article(ROOT / "data/corpus/001_d33884d0ecc97606.txt").text)]
    texts = [judge_text("NATO debates ways to boost ties with Ukraine", s) for s in (sents * 3)[:20]]
    started = time.perf_counter()
    judge = OnnxJudge(path, threads=threads, variant=variant)
    judge.answers("What will the NATO-Ukraine Commission become?", texts)
    cold = time.perf_counter() - started
    times, cpu = [], []
    for i in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        if i % 2:
            judge.relation("The NATO-Ukraine Commission is not set to be upgraded.", texts)
        else:
            judge.answers("What will the NATO-Ukraine Commission become?", texts)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {
        "variant": variant,
        "threads": threads,
        "pairs": len(texts),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "cpu_ms_p50": round(statistics.median(cpu) * 1000, 1),
        "cold_start_s": round(cold, 3),
        "rss_runtime_libs_mb": round(before - start_rss, 1),
        "rss_added_mb": round(rss_mb() - before, 1),
    }


def latency(path: Path, threads: int, rounds: int) -> list[dict]:
    out = []
    for variant in ("float", "int8"):
        if not (path / ("model-int8.onnx" if variant == "int8" else "model.onnx")).is_file():
            continue
        cmd = [
            sys.executable,
            __file__,
            "--judge",
            str(path),
            "--latency-child",
            variant,
            "--threads",
            str(threads),
            "--rounds",
            str(rounds),
        ]
        out.append(
            json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", type=Path, default=None, help="judge folder (default: RAG_JUDGE_PATH or models/judge)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--claims", type=Path, nargs="+", default=[ROOT / "data/claims/claims_heldout.jsonl"])
    ap.add_argument(
        "--variant",
        choices=["float", "int8"],
        default=None,
        help="graph for the figures (default: the one the build kept)",
    )
    ap.add_argument("--top", type=int, default=5, help="sentences of the gold article judged per claim")
    ap.add_argument("--support", type=float, default=0.5)
    ap.add_argument("--contradict", type=float, default=0.5)
    ap.add_argument(
        "--tune-on",
        type=Path,
        default=None,
        help="claims to choose --support/--contradict on (e.g. data/claims/claims_dev.jsonl)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--heldout-cap", type=int, default=1500, help="pairs per held-out set (the build measures 500)")
    ap.add_argument("--smoke", action="store_true", help="tiny data and few rounds: checks the bench runs, in seconds")
    ap.add_argument("--skip-heldout", action="store_true", help="claims and latency only")
    ap.add_argument("--latency-child", choices=["float", "int8"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        path = judge_path(args.judge)
        meta = read_meta(path)
    except ModelMissingError as exc:
        print(f"bench/judge.py: {exc}", file=sys.stderr)
        return 2
    if args.latency_child:
        print(json.dumps(latency_child(path, args.latency_child, args.threads, args.rounds)))
        return 0
    judge = OnnxJudge(path, threads=args.threads, variant=args.variant)
    result: dict = {
        "judge": judge.name,
        "variant": judge.variant,
        "training": {
            k: meta.get(k)
            for k in ("training_pairs", "max_length", "epochs", "train_seconds", "pairs_per_second", "total_seconds")
        },
    }
    print(
        f"judge {judge.name} ({judge.variant}); trained on {meta.get('training_pairs')} pairs in "
        f"{meta.get('train_seconds')} s, build {meta.get('total_seconds')} s"
    )

    if not args.skip_heldout and (args.shared / RTQA).is_dir():
        # The build's own recipe (training halves as trained), with more held-out pairs than the build measured.
        fields = Recipe.__dataclass_fields__
        sizes = {k: v for k, v in (meta.get("recipe_sizes") or {}).items() if k in fields}
        _, heldout = build(args.shared, Recipe(**{**sizes, "heldout_cap": 40 if args.smoke else args.heldout_cap}))
        result["heldout"] = {}
        for name, pairs in heldout.items():
            pairs = pairs[:40] if args.smoke else pairs  # FEVER's half is taken whole by the recipe
            result["heldout"][name] = figures = measure(judge, pairs)
            print(f"  held-out {name:8s} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
            if name == "rules_B":  # which edits it reads, kind by kind
                kinds = sorted({p.source for p in pairs})
                figures["by_source"] = {
                    k: measure(judge, [p for p in pairs if p.source == k])["relation_acc"] for k in kinds
                }
                print("    by rule: " + "  ".join(f"{k} {v}" for k, v in figures["by_source"].items()))

    if args.tune_on:
        dev = [json.loads(ln) for ln in args.tune_on.read_text().splitlines() if ln.strip()]
        args.support, args.contradict = tune(
            judged_claims(judge, dev[:8] if args.smoke else dev, args.shared, top=args.top)
        )
        print(f"  thresholds from {args.tune_on.name}: support {args.support}, contradict {args.contradict}")
    claims = [json.loads(ln) for p in args.claims for ln in p.read_text().splitlines() if ln.strip()]
    claims = claims[:8] if args.smoke else claims
    suite = claim_suite(
        judged_claims(judge, claims, args.shared, top=args.top), support=args.support, contradict=args.contradict
    )
    result["claims"] = {
        "files": [p.name for p in args.claims],
        "tuned_on": args.tune_on.name if args.tune_on else None,
        "top": args.top,
        "support": args.support,
        "contradict": args.contradict,
        **suite,
    }
    print(
        f"  claims ({', '.join(p.name for p in args.claims)}): "
        + "  ".join(
            f"{k} {suite[k]}"
            for k in (
                "claims",
                "accuracy",
                "supported_recall",
                "contradicted_recall",
                "not_found_recall",
                "wrongly_supported",
            )
        )
    )
    print(f"  claims by kind: {suite['by_kind']}")
    for e in suite["errors"]:
        print(f"    {e['id']} expected {e['expected']:12s} got {e['got']:12s} {e['claim']}")

    result["latency"] = latency(path, args.threads, 5 if args.smoke else args.rounds)
    for lat in result["latency"]:
        print(
            f"  latency {lat['variant']:5s}: 20 pairs p50 {lat['p50_ms']} ms wall, {lat['cpu_ms_p50']} ms CPU on "
            f"{lat['threads']} threads; cold start {lat['cold_start_s']} s; RSS +{lat['rss_added_mb']} MB "
            f"(+{lat['rss_runtime_libs_mb']} MB onnxruntime/tokenizers imports)"
        )
    if not args.smoke:
        print("wrote", write_json("judge", result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
