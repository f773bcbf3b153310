"""What the reader costs a question: `Pipeline.read` (the best 8 evidence sentences) against the raw
transformers forward pass on the same pairs, same run, alternating; plus its load time and resident memory.

    .venv/bin/python bench/reader.py [--index build/eval-index] [--questions data/questions/nato_questions.jsonl]
    [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rag.core.settings import Settings  # noqa: E402
from rag.evaluate.questions import load_questions  # noqa: E402
from rag.models.reader import reader_input  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=ROOT / "build/eval-index")
    ap.add_argument("--questions", type=Path, default=ROOT / "data/questions/nato_questions.jsonl")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reader", type=Path, default=None, help="reader folder (default: models/reader)")
    ap.add_argument(
        "--smoke", action="store_true", help="a reader trained on 4 SQuAD questions, the bundled corpus, 1 round"
    )
    args = ap.parse_args()

    from rag.answer.pipeline import Pipeline

    if args.smoke:
        import tempfile

        from common import SQUAD_DEV, smoke_index

        from rag.evaluate.train_reader import main as train_reader

        work = Path(tempfile.mkdtemp(prefix="bench-reader-smoke-"))
        args.index, args.rounds, args.reader = smoke_index(work), 1, work / "reader"
        args.questions = ROOT / "data/questions/dev_questions.jsonl"
        train_reader(["--squad", str(SQUAD_DEV), "--out", str(args.reader), "--questions", "4", "--threads", "1"])
    settings = Settings(
        _env_file=None, index_dir=args.index, use_reader=True, **({"reader_path": args.reader} if args.reader else {})
    )
    before = rss_mb()
    started = time.perf_counter()
    pipeline = Pipeline.from_settings(settings, with_generator=False)
    if pipeline.reader is None:
        sys.exit("no reader: run `make reader` first")
    print(
        f"pipeline with reader loaded in {time.perf_counter() - started:.2f} s; peak RSS {before:.0f} -> "
        f"{rss_mb():.0f} MB"
    )
    # The raw side: the trained weights in transformers on torch, as `make reader` saved them; ours runs their ONNX
    # export (rag/models/reader.py).
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(pipeline.reader.path))
    model = AutoModelForSequenceClassification.from_pretrained(str(pipeline.reader.path)).eval()
    torch.set_num_threads(pipeline.reader.threads or torch.get_num_threads())

    cases = []
    for q in load_questions(args.questions):
        found = pipeline.gather(q.question, mode="extractive", top_k=None, since=None, until=None, as_of=date.today())
        if found.evidence.sentences:
            cases.append(found.evidence)
    ours, raw = [], []
    for _ in range(args.rounds):
        for evidence in cases:
            t = time.perf_counter()
            pipeline.read(evidence)
            ours.append(time.perf_counter() - t)
            titles = {sp.passage.passage_id: sp.passage.meta.title for sp in evidence.sources}
            best = sorted(evidence.sentences, key=lambda s: -s.relevance)[: settings.reader_sentences]
            texts = [reader_input(titles.get(s.passage_id), s.text) for s in best]
            t = time.perf_counter()
            with torch.inference_mode():
                enc = tokenizer(
                    [evidence.question] * len(texts),
                    texts,
                    truncation="only_second",
                    max_length=128,
                    padding=True,
                    return_tensors="pt",
                )
                torch.sigmoid(model(**enc).logits.squeeze(-1)).tolist()
            raw.append(time.perf_counter() - t)
    p50 = lambda xs: statistics.median(xs) * 1000
    p95 = lambda xs: sorted(xs)[int(0.95 * (len(xs) - 1))] * 1000
    print(
        f"{len(cases)} questions x {args.rounds} rounds, {settings.reader_sentences} sentences each, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"Pipeline.read      p50 {p50(ours):6.1f} ms  p95 {p95(ours):6.1f} ms")
    print(f"raw forward pass   p50 {p50(raw):6.1f} ms  p95 {p95(raw):6.1f} ms")
    print(f"ratio ours/raw (p50) {p50(ours) / p50(raw):.2f}")


if __name__ == "__main__":
    main()
