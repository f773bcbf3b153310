"""Answers decoded together (RAG_MODEL_SLOTS, rag/models/llama_batching.py) against llama-cpp-python answering
them in turn.

The same real prompts (Pipeline.ask's own, for the bench questions, over the bundled articles) arrive every
--gap seconds, and both sides answer every one of them greedily with the same max_tokens and stops, on the
one loaded model:
    raw     Llama.create_completion(prompt, stream=True), one at a time in arrival order, as a server with a
            lock around the model serves them (KV prefix reuse as the library does it)
    ours    LlamaCppGenerator(slots=N).stream: each arrival starts at the next decoding step
Reported per side: time from arrival to the first piece and to the end (p50 / p95), tokens per second over
the whole run, and the ratios ours / raw. Also whether each answer's text equals raw's, and the decoding step
alone: written tokens per second with 1 and with --slots answers side by side.

    python bench/batching.py [--slots 4] [--requests 12] [--gap 0.5] [--limit N]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from answer import DEFAULT_QUESTIONS, prompt_of
from common import ROOT, load_questions, peak_rss_mb, print_header, summary_ms, write_json


def run_raw(llm: Any, jobs: list[dict[str, Any]], gap: float) -> list[dict[str, Any]]:
    start = time.perf_counter()
    out = []
    for i, job in enumerate(jobs):
        arrival = start + i * gap
        time.sleep(max(0.0, arrival - time.perf_counter()))  # served in turn: never before it arrived
        first, pieces, tokens = None, [], 0
        for chunk in llm.create_completion(
            job["prompt"], max_tokens=job["budget"], temperature=0.0, stop=job["stops"], stream=True
        ):
            tokens += 1
            if text := chunk["choices"][0]["text"]:
                first = first or time.perf_counter()
                pieces.append(text)
        end = time.perf_counter()
        out.append(
            {
                "ttft_s": (first or end) - arrival,
                "total_s": end - arrival,
                "tokens": tokens,
                "text": "".join(pieces),
                "end": end - start,
            }
        )
    return out


def run_batched(generator: Any, jobs: list[dict[str, Any]], gap: float) -> list[dict[str, Any]]:
    start = time.perf_counter()
    out: list[dict[str, Any]] = [{} for _ in jobs]

    def one(i: int) -> None:
        arrival = start + i * gap
        time.sleep(max(0.0, arrival - time.perf_counter()))
        first, pieces = None, []
        for piece in generator.stream(jobs[i]["messages"], max_tokens=jobs[i]["budget"], temperature=0.0):
            first = first or time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        out[i] = {
            "ttft_s": (first or end) - arrival,
            "total_s": end - arrival,
            "tokens": generator.usage.completion_tokens,
            "text": "".join(pieces),
            "end": end - start,
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def decode_rate(generator: Any, sequences: int, tokens: int = 120) -> float:
    """Written tokens per second with `sequences` answers decoding side by side from a short prompt (no stops),
    counted after every one has begun writing: the decoding step alone, without prompt reading."""
    engine = generator._batched()
    prompt = generator.tokenize(
        generator.format_prompt([{"role": "user", "content": "Write a long story about a lighthouse keeper."}])[0]
    )
    completions = [engine.submit(prompt, max_tokens=tokens, temperature=0.0, stops=[]) for _ in range(sequences)]
    iterators = [iter(c) for c in completions]
    threads = [threading.Thread(target=lambda it=it: [None for _ in it]) for it in iterators]
    for t in threads:
        t.start()
    while min(c.tokens for c in completions) < 8 and all(t.is_alive() for t in threads):  # every answer writing
        time.sleep(0.005)
    start, done = time.perf_counter(), sum(c.tokens for c in completions)
    for t in threads:
        t.join()
    return (sum(c.tokens for c in completions) - done) / (time.perf_counter() - start)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    wall = max(r["end"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    return {
        "first_piece": summary_ms([r["ttft_s"] for r in rows]),
        "answer": summary_ms([r["total_s"] for r in rows]),
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between arrivals")
    parser.add_argument("--threads", type=int, default=1, help="RAG_N_THREADS for both sides")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="2 requests, 2 slots, no gap: that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.slots, args.requests, args.gap = 2, 2, 0.0

    print_header("batching")
    from rag.answer.pipeline import Pipeline
    from rag.core.settings import Settings
    from rag.ingest.indexing import index_paths
    from rag.models.embedding import build_embedder
    from rag.models.generator import LlamaCppGenerator, default_gguf_path

    work = Path(tempfile.mkdtemp(prefix="newsrag-bench-batching-"))
    try:
        # Drafting forced on: this measures the model, which the bundled model's record would otherwise skip.
        settings = Settings(
            index_dir=work / "index", n_threads=args.threads, model_slots=args.slots, generation_min_survival=0
        )
        index_paths(settings, build_embedder(settings), [ROOT / "data/corpus"])
        pipeline = Pipeline.from_settings(settings, with_generator=False)
        # One model for both sides: loaded for one slot (so raw's Llama has its full context), then switched to
        # slots, which adds the batching context over the same weights.
        generator = LlamaCppGenerator(Path(settings.gguf_path or default_gguf_path()), n_threads=args.threads)
        generator.slots = args.slots
        pipeline.generator = generator
        jobs: list[dict[str, Any]] = []
        for row in load_questions(DEFAULT_QUESTIONS):
            if len(jobs) == args.requests:
                break
            if (messages := prompt_of(pipeline, row["question"])) is None:
                continue  # abstains before any prompt: nothing for the model
            prompt, stops = generator.format_prompt(messages)
            budget = generator.completion_budget(generator.count_tokens(prompt), settings.max_new_tokens)
            jobs.append(
                {
                    "messages": messages,
                    "prompt": prompt,
                    "stops": stops,
                    "budget": budget,
                    "prompt_tokens": generator.count_tokens(prompt),
                }
            )
        llm = generator._llm
        llm.create_completion(jobs[0]["prompt"], max_tokens=4, temperature=0.0)  # warm-up, untimed, both sides
        "".join(generator.stream(jobs[0]["messages"], max_tokens=4, temperature=0.0))
        raw, ours = run_raw(llm, jobs, args.gap), run_batched(generator, jobs, args.gap)
        same = sum(a["text"] == b["text"] for a, b in zip(raw, ours))
        decoding = {n: round(decode_rate(generator, n), 1) for n in sorted({1, args.slots})}
        result = {
            "slots": args.slots,
            "requests": len(jobs),
            "gap_s": args.gap,
            "threads": args.threads,
            "prompt_tokens_mean": round(sum(j["prompt_tokens"] for j in jobs) / len(jobs)),
            "raw": summarise(raw),
            "ours": summarise(ours),
            "same_text": same,
            "decode_tokens_per_s": decoding,
            "peak_rss_mb": peak_rss_mb(),
        }
        r, o = result["raw"], result["ours"]
        result["ratios"] = {
            "first_piece_p50": round(o["first_piece"]["p50_ms"] / r["first_piece"]["p50_ms"], 3),
            "first_piece_p95": round(o["first_piece"]["p95_ms"] / r["first_piece"]["p95_ms"], 3),
            "answer_p95": round(o["answer"]["p95_ms"] / r["answer"]["p95_ms"], 3),
            "tokens_per_s": round(o["tokens_per_s"] / r["tokens_per_s"], 3),
        }
        for side in ("raw", "ours"):
            s = result[side]
            print(
                f"{side:>4}: first piece p50 {s['first_piece']['p50_ms']:.0f} / p95 {s['first_piece']['p95_ms']:.0f} "
                f"ms; answer p50 {s['answer']['p50_ms']:.0f} / p95 {s['answer']['p95_ms']:.0f} ms; {s['tokens']} "
                f"tokens in {s['wall_s']} s = {s['tokens_per_s']} tokens/s"
            )
        print(
            f"ours / raw: {result['ratios']}; same text {same} of {len(jobs)}; {len(jobs)} requests every {args.gap} "
            f"s, {args.slots} slots, {args.threads} thread(s); prompts {result['prompt_tokens_mean']} tokens on average"
        )
        print(
            "decoding alone (short prompt, no prompt reading): "
            f"{', '.join(f'{n} answer(s) {r} tokens/s' for n, r in decoding.items())}"
        )
        if not args.no_json:
            print("wrote", write_json("batching", result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
