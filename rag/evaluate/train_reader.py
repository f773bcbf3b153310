"""Fine-tune the reader (rag/models/reader.py) from the packaged MiniLM weights on SQuAD 2.0, offline and seeded.

    python -m rag.evaluate.train_reader --squad ../shared/benchmarks/squad-v2/dev-v2.0.json --out models/reader

Only the SQuAD articles of split "A" (`title_half`) are read; the answer decision is fitted and every SQuAD
figure is reported on split "B", so the reader never saw a paragraph it is judged on. Pairs per question:
the sentence holding the answer (label 1) against the paragraph's sentence sharing most words with the
question and one other (label 0); an unanswerable question's two most word-sharing sentences are both 0:
they are the ones its writer made it look answerable from. Sentences come from the same splitter and carry
the same title prefix as at answer time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag.models.reader import FORMAT, META_FILE, ONNX_FILE, reader_input
from rag.models.reader_export import export_reader
from rag.text.sentences import split_sentences
from rag.text.tokens import content_terms

SEED = 7


def title_half(title: str) -> str:
    """A fixed split of SQuAD's articles by title: "A" trains the reader, "B" is for fitting and reporting."""
    return "A" if int(hashlib.sha1(title.encode()).hexdigest(), 16) % 2 == 0 else "B"


@dataclass
class Pair:
    question: str
    text: str
    label: float


def _sentences(context: str) -> list[tuple[int, int, str]]:
    return [(s, e, " ".join(context[s:e].split())) for s, e in split_sentences(context)]


def pairs_from_squad(articles: list[dict], *, questions: int, seed: int = SEED) -> list[Pair]:
    rng = random.Random(seed)
    candidates: list[tuple[str, dict, list[tuple[int, int, str]]]] = []
    for article in articles:
        if title_half(article["title"]) != "A":
            continue
        title = article["title"].replace("_", " ")
        for para in article["paragraphs"]:
            sents = _sentences(para["context"])
            if len(sents) < 2:
                continue
            candidates += [(title, qa, sents) for qa in para["qas"]]
    picked = rng.sample(candidates, min(questions, len(candidates)))
    pairs: list[Pair] = []
    for title, qa, sents in picked:
        q = " ".join(qa["question"].split())
        terms = content_terms(q)
        by_overlap = sorted(range(len(sents)), key=lambda i: -len(terms & content_terms(sents[i][2])))
        if qa.get("is_impossible") or not qa.get("answers"):
            negatives = by_overlap[:2]
            positive = None
        else:
            start = qa["answers"][0]["answer_start"]
            positive = next((i for i, (s, e, _) in enumerate(sents) if s <= start < e), None)
            if positive is None:
                continue
            others = [i for i in range(len(sents)) if i != positive]
            hard = next(i for i in by_overlap if i != positive)
            rest = [i for i in others if i != hard]
            negatives = [hard] + ([rng.choice(rest)] if rest else [])
            pairs.append(Pair(q, reader_input(title, sents[positive][2]), 1.0))
        pairs += [Pair(q, reader_input(title, sents[i][2]), 0.0) for i in negatives]
    rng.shuffle(pairs)
    return pairs


def train(
    pairs: list[Pair],
    base: Path,
    out: Path,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_length: int = 128,
    threads: int | None = None,
) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()  # the fresh classifier head is the point, not a warning
    torch.manual_seed(SEED)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    model.train()
    steps = epochs * ((len(pairs) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    started, step, losses = time.perf_counter(), 0, []
    for _ in range(epochs):
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            enc = tokenizer(
                [p.question for p in batch],
                [p.text for p in batch],
                truncation="only_second",
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = model(**enc).logits.squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([p.label for p in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            losses.append(loss.item())
            if step % 20 == 0 or step == steps:
                rate = step * batch_size / (time.perf_counter() - started)
                print(
                    f"\rreader: step {step}/{steps}  loss {sum(losses[-20:]) / len(losses[-20:]):.3f}  {rate:.0f} "
                    "pairs/s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    print(file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, required=True, help="SQuAD 2.0 dev JSON (read, never copied)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="sentence-transformers folder to start from (default: the packaged MiniLM)",
    )
    parser.add_argument("--questions", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    from rag.evaluate.squad import load_squad
    from rag.models.model_files import default_embedding_model_path

    base = args.base or default_embedding_model_path()
    pairs = pairs_from_squad(load_squad(args.squad), questions=args.questions)
    print(
        f"reader: {len(pairs)} pairs ({sum(p.label for p in pairs):.0f} positive) from SQuAD 2.0 split A",
        file=sys.stderr,
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    stats = train(pairs, base, tmp, epochs=args.epochs, threads=args.threads)
    meta = {
        "format": FORMAT,
        "trained_on": f"squad2-dev-A-{args.questions}q-seed{SEED}",
        "pairs": len(pairs),
        "base": base.name,
        **stats,
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    export_reader(tmp, ONNX_FILE)  # what answering runs (ONNX Runtime, no torch at query time)
    # The folder appears whole or not at all: a killed run leaves only the .tmp twin, which a rerun replaces.
    if args.out.exists():
        import shutil

        shutil.rmtree(args.out)
    tmp.rename(args.out)
    print(f"reader: wrote {args.out} in {stats['seconds']} s (final loss {stats['final_loss']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
