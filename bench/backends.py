"""hit@5 of an index built by each embedding backend (torch, ONNX float, ONNX int8), dense and hybrid, on SQuAD 2.0
and the RealTime QA questions; and the torch-built index searched by the ONNX embedders (one build served by
the other). Figures only, no timing: this is what chooses the default backend (issue 26).

    .venv/bin/python bench/backends.py                    # SQuAD 500 (answerable only) and RealTime QA, all builds
    .venv/bin/python bench/backends.py --sets squad --builds torch,none
    .venv/bin/python bench/backends.py --smoke            # the bundled corpus and NATO questions, seconds
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, SQUAD_DEV, print_header, write_json
from retrieval import evaluate

RTQA = ROOT.parent / "shared" / "benchmarks" / "realtimeqa-2022-summer"
BUILDS = {"torch": ("torch", "none"), "none": ("onnx", "none"), "int8": ("onnx", "int8")}


def question_sets(
    names: list[str], work: Path, limit: int, seed: int, smoke: bool, rtqa_others: int | None = None
) -> dict[str, tuple[Path, list, bool]]:
    """name -> (corpus folder, answerable questions with gold documents, ask as of the question's date)."""
    from rag.evaluate.squad import export_squad

    def read(path: Path) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [q for q in rows if q.get("gold_docs") and not q.get("history")]

    if smoke:
        return {"nato": (ROOT / "data" / "corpus", read(ROOT / "data/questions/nato_questions.jsonl")[:8], False)}
    sets: dict[str, tuple[Path, list, bool]] = {}
    if "squad" in names:
        exported = export_squad(SQUAD_DEV, work / "squad", limit=limit, seed=seed, unanswerable_share=0.0)
        sets["squad"] = (exported.corpus_dir, read(exported.questions_path), False)
    if "rtqa" in names:
        questions = read(RTQA / "questions.jsonl")
        corpus = RTQA / "corpus"
        if rtqa_others is not None:
            # The gold articles and a seeded sample of the rest: the same smaller archive for every build, so the
            # builds compare within the run (the whole 900 articles, ~17k passages, took 45 min a build on torch).
            gold = {d for q in questions for d in q["gold_docs"]}
            files = sorted(corpus.glob("*.txt"))
            others = [f for f in files if f.stem not in gold]
            keep = [f for f in files if f.stem in gold] + random.Random(seed).sample(
                others, min(rtqa_others, len(others))
            )
            corpus = work / "rtqa-corpus"
            corpus.mkdir(parents=True, exist_ok=True)
            for f in keep:
                (corpus / f.name).write_bytes(f.read_bytes())
        sets["rtqa"] = (corpus, questions, True)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="squad,rtqa", help="comma-separated: squad, rtqa")
    ap.add_argument("--builds", default="torch,none,int8", help="comma-separated: torch, none (ONNX float), int8")
    ap.add_argument("--squad-questions", type=int, default=500, help="SQuAD questions sampled (answerable kept)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--rtqa-others",
        type=int,
        default=None,
        help="RealTime QA: the gold articles and this many others (default all)",
    )
    ap.add_argument("--work", type=Path, default=None, help="keep the indexes here (default: a temporary folder)")
    ap.add_argument("--smoke", action="store_true", help="bundled corpus, 8 NATO questions, torch and float only")
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args()

    from rag.answer.pipeline import Pipeline
    from rag.core.settings import Settings
    from rag.ingest.indexing import index_paths
    from rag.models.embedding import build_embedder
    from rag.models.prompts import PromptSet

    builds = ["torch", "none"] if args.smoke else args.builds.split(",")
    print_header("hit@5 by embedding backend")
    tmp = tempfile.TemporaryDirectory(prefix="bench-backends-")
    work = args.work or Path(tmp.name)
    results: dict[str, Any] = {}
    embedders = {}
    for build in builds:
        backend, quantization = BUILDS[build]
        embedders[build] = build_embedder(
            Settings(_env_file=None, embedding_backend=backend, embedding_quantization=quantization)
        )
    for set_name, (corpus, questions, as_of) in question_sets(
        args.sets.split(","), work, args.squad_questions, args.seed, args.smoke, args.rtqa_others
    ).items():
        pipelines = {}
        for build in builds:
            backend, quantization = BUILDS[build]
            settings = Settings(
                _env_file=None,
                index_dir=work / f"{set_name}-{build}",
                embedding_backend=backend,
                embedding_quantization=quantization,
            )
            start = time.perf_counter()
            index, _ = index_paths(settings, embedders[build], [corpus])
            built = time.perf_counter() - start
            pipelines[build] = Pipeline(settings, index, embedders[build], None, PromptSet.load())
            results[f"{set_name} {build} build"] = {"passages": len(index.passages), "seconds": round(built, 1)}
            print(f"{set_name}: {build} built {len(index.passages)} passages in {built:.0f}s", flush=True)
        # The torch-built index searched with each ONNX embedder: what serving one build with the other gives.
        served = {b: pipelines[b] for b in builds}
        if "torch" in pipelines:
            for build in builds:
                if build != "torch":
                    p = pipelines["torch"]
                    served[f"torch-built, {build} queries"] = Pipeline(
                        p.settings, p.index, embedders[build], None, p.prompts
                    )
        for label, pipeline in served.items():
            for method in ("dense", "hybrid"):
                r = evaluate(pipeline, questions, method, 20, as_of)
                results[f"{set_name} {label} {method}"] = {k: round(v, 4) for k, v in r.items()}
                print(
                    f"| {set_name} | {label} | {method} | {r['n']} | hit@1 {r['hit_at_1']:.3f} | "
                    f"hit@5 {r['hit_at_5']:.3f} | MRR {r['mrr']:.3f} |",
                    flush=True,
                )
    if not args.no_json:
        write_json("backends", {"smoke": args.smoke, "results": results})
    tmp.cleanup()


if __name__ == "__main__":
    main()
