"""Fit the packaged answer decision (rag/answer/decision.json) on three kinds of question at once, and report it
on halves it never saw.

    .venv/bin/python bench/train_decision.py --squad-index build/squad-index --rtqa-index build/rtqa-index \
        --nato-index build/eval-index [--write rag/answer/decision.json]

Sources (read from ../shared at run time; nothing of them is committed):
- SQuAD 2.0 dev: `--squad-n` questions sampled with seed 7 (half unanswerable) from those *not* in the
  500-question eval sample (`rag squad ... --limit 500 --seed 13`), asked over all 1,204 paragraphs;
- RealTime QA summer 2022: one half of the questions (fixed split, seed 7), `question_date` as as-of; the
  `rtqa_paraphrased` ones are left out of fitting (their `must_include` misses right answers);
- the NATO set (data/questions/nato_questions.jsonl): one half, same split rule.
Every answerable question is also asked with its gold articles left out (a negative). Feature rows are cached
in build/decision/ so refitting takes a second; `--refresh` recomputes them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer.decision import BASE_FEATURES, FEATURES  # noqa: E402
from rag.core.settings import Settings  # noqa: E402
from rag.evaluate.calibrate import GRID, Row, collect, curve, fit, rows_from_json, rows_to_json, split  # noqa: E402
from rag.evaluate.questions import EvalQuestion, load_questions  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"


def squad_questions(n: int, eval_questions: Path, *, half: str | None = None) -> list[EvalQuestion]:
    """`half`: only SQuAD articles of that title split (rag/evaluate/train_reader.py); "B" when a reader trained on "A"
    is used.
    """
    from rag.evaluate.squad import doc_id_for, load_squad, question_row
    from rag.evaluate.train_reader import title_half

    held = {json.loads(line)["id"] for line in eval_questions.read_text().splitlines() if line.strip()}
    rows = []
    for article in load_squad(SHARED / "squad-v2" / "dev-v2.0.json"):
        if half is not None and title_half(article["title"]) != half:
            continue
        for index, para in enumerate(article["paragraphs"]):
            doc_id = doc_id_for(article["title"], index)
            rows += [
                r
                for qa in para["qas"]
                if (r := question_row(qa, doc_id, article["title"].replace("_", " "))) and r["id"] not in held
            ]
    rng = random.Random(7)
    unanswerable = [r for r in rows if not r["must_include"]]
    answerable = [r for r in rows if r["must_include"]]
    picked = rng.sample(unanswerable, n // 2) + rng.sample(answerable, n - n // 2)
    return [EvalQuestion.model_validate(r) for r in picked]


def rows_for(
    name: str,
    index_dir: Path,
    questions: list[EvalQuestion],
    cache: Path,
    refresh: bool,
    reader: Path | None,
    judge: Path | None = None,
) -> list[Row]:
    path = cache / f"rows-{name}{'-reader' if reader else ''}{'-judge' if judge else ''}.json"
    if path.is_file() and not refresh:
        return rows_from_json(json.loads(path.read_text()))
    from rag.answer.pipeline import Pipeline

    settings = Settings(
        _env_file=None,
        index_dir=index_dir,
        reader_path=reader,
        use_reader=reader is not None,
        use_judge=judge is not None,
        judge_path=judge,
    )
    pipeline = Pipeline.from_settings(settings, with_generator=False)
    rows = collect(
        pipeline,
        questions,
        source=name,
        on_progress=lambda d, t: print(f"\r{name}: {d}/{t}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows_to_json(rows)))
    return rows


def fmt(v) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def report(title: str, rows: list[Row], model, thresholds: list[float]) -> dict:
    for r in rows:
        r.probability = model.probability(r.features)
    gold = [r for r in rows if r.variant == "gold"]
    lgo = [r for r in rows if r.variant == "leave_gold_out"]
    pos = [r for r in gold if r.label]
    at = model.threshold
    summary = {
        "rows": len(rows),
        "answerable_with_answer_in_evidence": len(pos),
        "answered_of_those": sum((r.probability or 0) >= at for r in pos) / len(pos) if pos else None,
        "unanswerable_refused": (lambda u: sum((r.probability or 0) < at for r in u) / len(u) if u else None)(
            [r for r in gold if not r.label]
        ),
        "leave_gold_out_refused": sum((r.probability or 0) < at for r in lgo) / len(lgo) if lgo else None,
    }
    print(
        f"\n## {title}: {len(rows)} rows ({len(pos)} answerable with the answer in the evidence, {len(lgo)} "
        "left-gold-out)"
    )
    print(" | ".join(f"{k} {fmt(v) if isinstance(v, float) or v is None else v}" for k, v in summary.items()))
    print("threshold | answered/answerable | refused/unanswerable | answer P | abstain P | bal.acc")
    for p in curve(rows, thresholds):
        mark = " <" if abs(p["threshold"] - at) < 1e-9 else ""
        print(
            f"{p['threshold']:.3f} | {fmt(p['answered_of_answerable'])} | {fmt(p['refused_of_unanswerable'])} | "
            f"{fmt(p['answer_precision'])} | {fmt(p['abstain_precision'])} | {fmt(p['balanced_accuracy'])}{mark}"
        )
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-index", type=Path, default=ROOT / "build/squad-index")
    ap.add_argument("--squad-eval-questions", type=Path, default=ROOT / "build/squad/questions.jsonl")
    ap.add_argument("--rtqa-index", type=Path, default=ROOT / "build/rtqa-index")
    ap.add_argument("--nato-index", type=Path, default=ROOT / "build/eval-index")
    ap.add_argument("--squad-n", type=int, default=800)
    ap.add_argument("--cache", type=Path, default=ROOT / "build/decision")
    ap.add_argument("--refresh", action="store_true")
    # 0.1: at C=1 the collinear `strength` (half cosine, half coverage) took a negative weight against
    # `best_coverage`, so stronger evidence could lower the probability; at 0.1 it sits near zero.
    ap.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the logistic model")
    ap.add_argument("--min-answered", type=float, default=0.85)
    ap.add_argument(
        "--write", type=Path, help="write the model fitted without the reader here (rag/answer/decision.json ships it)"
    )
    ap.add_argument(
        "--reader",
        type=Path,
        help="a reader folder (make reader): gather rows with it and fit a second model on its scores too",
    )
    ap.add_argument(
        "--judge",
        type=Path,
        help="a judge folder (make judge): its answers head is the reader; rows and the second model use its scores",
    )
    ap.add_argument(
        "--write-reader",
        type=Path,
        help="write the model fitted with the reader here (rag/answer/decision-reader.json ships it)",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="the bundled corpus as all three indexes, 12 questions of each set"
    )
    args = ap.parse_args()
    if args.judge and args.reader:
        ap.error("--reader and --judge each fill the reader's place: give one")
    scored_by = args.judge or args.reader

    few = None
    if args.smoke:
        import tempfile

        from common import smoke_index

        work = Path(tempfile.mkdtemp(prefix="bench-decision-smoke-"))
        args.squad_index = args.rtqa_index = args.nato_index = smoke_index(work)
        args.squad_n, args.cache, args.refresh, few = 12, work / "cache", True, 12
        args.write = args.write_reader = None
        args.squad_eval_questions = work / "no-eval-sample.jsonl"  # nothing held out of a 12-question sample
        args.squad_eval_questions.write_text("")

    rtqa = list(load_questions(SHARED / "realtimeqa-2022-summer" / "questions.jsonl"))[:few]
    nato = load_questions(ROOT / "data/questions/nato_questions.jsonl")[:few]
    rtqa_fit_ids, _ = split([q.id for q in rtqa])
    nato_fit_ids, _ = split([q.id for q in nato])
    # With a reader (trained on SQuAD title split A), SQuAD questions come from split B only and half of them
    # are held out too, so every figure below is on paragraphs neither the reader nor the fit has seen.
    squad = squad_questions(args.squad_n, args.squad_eval_questions, half="B" if scored_by else None)
    squad_fit_ids = split([q.id for q in squad])[0] if scored_by else {q.id for q in squad}

    all_rows = {
        "squad": rows_for("squad", args.squad_index, squad, args.cache, args.refresh, args.reader, args.judge),
        "rtqa": rows_for("rtqa", args.rtqa_index, rtqa, args.cache, args.refresh, args.reader, args.judge),
        "nato": rows_for("nato", args.nato_index, nato, args.cache, args.refresh, args.reader, args.judge),
    }
    paraphrased = {q.id for q in rtqa if q.type == "rtqa_paraphrased"}
    fit_rows = (
        [r for r in all_rows["squad"] if r.id in squad_fit_ids]
        + [r for r in all_rows["rtqa"] if r.id in rtqa_fit_ids and r.id not in paraphrased]
        + [r for r in all_rows["nato"] if r.id in nato_fit_ids]
    )
    squad_source = f"{args.squad_n} questions, seed 7, disjoint from the seed-13 eval sample"
    if scored_by:
        squad_source += f"; title split B only (the reader trained on A), {len(squad_fit_ids)} of them (split seed 7)"
    trained_on = {
        "script": "bench/train_decision.py",
        "sources": {
            "squad-v2-dev": squad_source,
            "realtimeqa-2022-summer": f"{len(rtqa_fit_ids)} of {len(rtqa)} questions (split seed 7), in-gold only",
            "nato": f"{len(nato_fit_ids)} of {len(nato)} questions (split seed 7)",
        },
        "rows": len(fit_rows),
        "c": args.c,
        "min_answered": args.min_answered,
    }
    held_out = {
        "SQuAD split B, other half": [r for r in all_rows["squad"] if r.id not in squad_fit_ids],
        "RealTime QA other half": [r for r in all_rows["rtqa"] if r.id not in rtqa_fit_ids],
        "NATO other half": [r for r in all_rows["nato"] if r.id not in nato_fit_ids],
    }
    models = {
        "without reader": fit(
            fit_rows, c=args.c, min_answered=args.min_answered, trained_on=trained_on, features=BASE_FEATURES
        )
    }
    if scored_by:
        models["with reader"] = fit(
            fit_rows,
            c=args.c,
            min_answered=args.min_answered,
            trained_on={
                **trained_on,
                "reader": str(scored_by.name),
                "reader_kind": "judge" if args.judge else "reader",
            },
            features=FEATURES,
        )
    thresholds = [t for t in GRID if 0.2 <= t <= 0.8]
    for label, model in models.items():
        print(f"\n# decision {label}")
        print("weights (standardised features):")
        for name, w in sorted(zip(model.features, model.weights), key=lambda fw: -abs(fw[1])):
            print(f"  {name:24s} {w:+.3f}")
        print(f"threshold {model.threshold}, confident {model.confident}")
        report("fitted rows (all sources)", fit_rows, model, thresholds)
        for title, rows in held_out.items():
            if rows:
                report(f"held out: {title}", rows, model, thresholds)
    print("\n# ROC AUC on held-out rows (as asked and gold left out; label = the evidence answers)")
    for title, rows in held_out.items():
        if len({r.label for r in rows}) == 2:
            print(f"  {title:28s} " + "  ".join(f"{label} {auc(rows, m):.3f}" for label, m in models.items()))
    if args.write:
        models["without reader"].save(args.write)
        print(f"\nwrote {args.write}")
    if args.write_reader and "with reader" in models:
        models["with reader"].save(args.write_reader)
        print(f"wrote {args.write_reader}")


def auc(rows: list[Row], model) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([r.label for r in rows], [model.probability(r.features) for r in rows]))


if __name__ == "__main__":
    main()
