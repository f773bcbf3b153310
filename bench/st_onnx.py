"""sentence-transformers' own ONNX backend against ours (rag/models/onnx/embedder.py), same run, same passages.

    theirs  SentenceTransformer(folder, backend="onnx") (optimum-onnx's export of the same MiniLM), and for int8
            `export_dynamic_quantized_onnx_model(model, "avx512_vnni", folder)`, its quantisation helper
    ours    OnnxEmbedder on `make onnx`'s float and int8 exports

Indexing throughput (SQuAD passages, the two sides alternating in slices), one-question p50 (alternating), and
cold start (a fresh process: import, load, embed one question). sentence-transformers[onnx] needs optimum-onnx,
whose only release (0.1.0) caps transformers below 4.58 where this project pins 5.23, so it is not a dependency:
run it with those packages put in front on PYTHONPATH (they are never installed into the venv):

    .venv/bin/pip install --no-deps --target /tmp/st-onnx optimum-onnx==0.1.0 optimum==2.1.0 transformers==4.57.6 \\
        tokenizers==0.22.2 huggingface_hub==0.36.2
    PYTHONPATH=/tmp/st-onnx .venv/bin/python bench/st_onnx.py [--limit 300] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, print_header, squad_paragraphs, summary_ms, write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLD = """
import time, sys, json
t0 = time.perf_counter()
side, folder, quant = sys.argv[1], sys.argv[2], sys.argv[3]
if side == "theirs":
    from sentence_transformers import SentenceTransformer
    kw = {"model_kwargs": {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}} if quant == "int8" else {}
    m = SentenceTransformer(folder, backend="onnx", device="cpu", local_files_only=True, **kw)
    embed = lambda q: m.encode([q], normalize_embeddings=True)
else:
    from rag.core.settings import Settings
    from rag.models.embedding import build_embedder
    m = build_embedder(Settings(_env_file=None, embedding_backend="onnx", embedding_quantization=quant))
    embed = lambda q: m.embed([q])
embed("What was decided about the NATO-Ukraine Council?")
print(json.dumps({"s": time.perf_counter() - t0, "torch": "torch" in sys.modules}))
"""


def passages(limit: int) -> list[str]:
    out = []
    for _, context in squad_paragraphs()[:limit]:
        words = context.split()
        out += [" ".join(words[i : i + 100]) for i in range(0, len(words), 100)]
    return out


def theirs_folder(work: Path) -> Path:
    """A copy of the packaged MiniLM folder with optimum's float export and the int8 one saved in it, so loading
    does not export again (sentence-transformers exports on every load when the folder holds no ONNX file)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    from rag.models.model_files import default_embedding_model_path

    folder = work / "st-model"
    shutil.copytree(default_embedding_model_path(), folder)
    model = SentenceTransformer(str(folder), backend="onnx", device="cpu", local_files_only=True)
    model.save_pretrained(str(folder))
    export_dynamic_quantized_onnx_model(model, "avx512_vnni", str(folder))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=300, help="SQuAD paragraphs (100-word passages)")
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cold-rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="12 paragraphs, 10 queries, one cold round")
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.limit, args.slices, args.queries, args.cold_rounds = 12, 2, 10, 1
    try:
        import optimum.onnxruntime  # noqa: F401
    except ImportError:
        raise SystemExit("needs optimum-onnx on PYTHONPATH: see `python bench/st_onnx.py --help`") from None
    from sentence_transformers import SentenceTransformer

    from rag.core.settings import Settings
    from rag.models.embedding import build_embedder

    print_header("sentence-transformers' ONNX backend vs ours")
    work = Path(tempfile.mkdtemp(prefix="bench-st-onnx-"))
    try:
        t = time.perf_counter()
        folder = theirs_folder(work)
        print(f"their export (optimum) + int8 quantisation: {time.perf_counter() - t:.1f}s", flush=True)
        texts = passages(args.limit)
        questions = [json.loads(x)["question"] for x in (ROOT / "data/questions/nato_questions.jsonl").open()]
        results: dict[str, Any] = {"passages": len(texts)}
        for quant in ("none", "int8"):
            kw = {"model_kwargs": {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}} if quant == "int8" else {}
            theirs = SentenceTransformer(str(folder), backend="onnx", device="cpu", local_files_only=True, **kw)
            ours = build_embedder(Settings(_env_file=None, embedding_backend="onnx", embedding_quantization=quant))
            sides = {
                "theirs": lambda batch, m=theirs: m.encode(batch, batch_size=64, normalize_embeddings=True),
                "ours": lambda batch, m=ours: m.embed(batch),
            }
            for fn in sides.values():
                fn(texts[:8])  # warm-up
            seconds = dict.fromkeys(sides, 0.0)
            step = -(-len(texts) // args.slices)
            for i in range(args.slices):
                chunk = texts[i * step : (i + 1) * step]
                for name in list(sides)[i % 2 :] + list(sides)[: i % 2]:
                    t = time.perf_counter()
                    sides[name](chunk)
                    seconds[name] += time.perf_counter() - t
            q = {name: [] for name in sides}
            for i in range(args.queries):
                for name in list(sides)[i % 2 :] + list(sides)[: i % 2]:
                    t = time.perf_counter()
                    sides[name]([questions[i % len(questions)]])
                    q[name].append(time.perf_counter() - t)
            row = {
                name: {"passages_per_s": round(len(texts) / seconds[name], 2), "query": summary_ms(q[name])}
                for name in sides
            }
            row["throughput_ours_over_theirs"] = round(seconds["theirs"] / seconds["ours"], 3)
            row["query_p50_ours_over_theirs"] = round(
                row["ours"]["query"]["p50_ms"] / row["theirs"]["query"]["p50_ms"], 3
            )
            results[quant] = row
            ours_q, theirs_q = row["ours"]["query"]["p50_ms"], row["theirs"]["query"]["p50_ms"]
            print(
                f"{quant}: indexing ours {row['ours']['passages_per_s']} vs theirs {row['theirs']['passages_per_s']} "
                f"passages/s ({row['throughput_ours_over_theirs']}x); query p50 ours {ours_q:.2f} vs theirs "
                f"{theirs_q:.2f} ms ({row['query_p50_ours_over_theirs']}x)",
                flush=True,
            )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        cold: dict[str, list] = {}
        for r in range(args.cold_rounds):
            for side in ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours"):
                t = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", COLD, side, str(folder), "none"], env=env, capture_output=True, text=True
                )
                wall = time.perf_counter() - t
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-2000:])
                inner = json.loads(done.stdout.strip().splitlines()[-1])
                cold.setdefault(side, []).append({"wall_s": round(wall, 3), **inner})
                print(f"  cold {side}: {wall:.2f}s (torch imported: {inner['torch']})", flush=True)
        results["cold"] = {side: min(runs, key=lambda x: x["wall_s"]) for side, runs in cold.items()}
        results["cold"]["ratio"] = round(results["cold"]["ours"]["wall_s"] / results["cold"]["theirs"]["wall_s"], 3)
        print(f"cold start (process to first query vector): ratio ours/theirs {results['cold']['ratio']}", flush=True)
        if not args.no_json:
            print("wrote", write_json("st_onnx", results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
