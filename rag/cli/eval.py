"""`rag eval`, `rag calibrate` and `rag squad`: measuring answers and fitting the answer decision, mounted on
rag.cli.main's app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from rag.cli.common import ModeOpt, TopKOpt, err, out, settings_of


def eval_cmd(
    ctx: typer.Context,
    questions: Annotated[Path, typer.Argument(help="question file, JSON Lines (see data/questions/)")],
    mode: ModeOpt = None,
    top_k: TopKOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for report.json and report.md")] = Path("build/eval"),
    baseline: Annotated[
        Optional[Path], typer.Option("--baseline", help="an earlier report.json; exit 1 when a quality figure drops")
    ] = None,
    tolerance: Annotated[
        Optional[float], typer.Option("--tolerance", help="allowed drop per figure (default RAG_EVAL_TOLERANCE, 0.05)")
    ] = None,
    leave_gold_out: Annotated[
        bool,
        typer.Option(
            "--leave-gold-out",
            help="ask each answerable question without its gold articles (no reindex): it must abstain",
        ),
    ] = False,
    record_generation: Annotated[
        bool,
        typer.Option(
            "--record-generation",
            help="with --mode generate: draft every answer and record how often the model's drafts survive "
            "verification (INDEX_DIR/generation.json; see RAG_GENERATION_MIN_SURVIVAL)",
        ),
    ] = False,
) -> None:
    """Score retrieval, answers, abstentions and citations on a question file; optionally gate on a baseline."""
    from rich.markdown import Markdown
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rag.evaluate.harness import run_eval

    columns = (
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # Not drawn when stderr is not a terminal: there it would only leave a blank line before errors.
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("loading", total=None)

        def progress(done: int, total: int, qid: str) -> None:
            bar.update(task, completed=done, description=qid)
            if not err.is_terminal and done % max(1, total // 10) == 0:
                err.print(f"{done}/{total} questions")  # the bar does not draw in CI logs; long runs still show life

        outcome = run_eval(
            settings_of(ctx),
            questions,
            out_dir=out_dir,
            mode=mode,
            top_k=top_k,
            baseline_path=baseline,
            tolerance=tolerance,
            leave_gold_out_run=leave_gold_out,
            record_generation=record_generation,
            on_start=lambda n: bar.update(task, total=n, description="asking"),
            on_progress=progress,
        )
    # Raw Markdown when piped (CI logs, files); rendered tables on a terminal.
    summary = outcome.summary_markdown()
    out.print(Markdown(summary) if out.is_terminal else summary, markup=False, highlight=False, soft_wrap=True)
    err.print(f"report written to {escape(str(outcome.out_dir / 'report.json'))} and report.md")
    if record_generation:
        survival = outcome.report["details"].get("generation_survival")
        err.print(f"generation survival {survival} recorded in {escape(outcome.report['run']['generation_record'])}")
    outcome.raise_for_regressions()


def calibrate_cmd(
    ctx: typer.Context,
    questions: Annotated[
        list[Path], typer.Argument(help="question files (JSON Lines, as for `rag eval`) about the indexed articles")
    ],
    out_path: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="where to write the decision model (default: INDEX_DIR/decision.json, which the pipeline then loads)",
        ),
    ] = None,
    min_answered: Annotated[
        float,
        typer.Option("--min-answered", help="share of answerable questions the chosen threshold must still answer"),
    ] = 0.85,
    leave_gold_out: Annotated[
        bool,
        typer.Option(
            "--leave-gold-out/--no-leave-gold-out",
            help="also ask each answerable question without its gold articles, as a negative",
        ),
    ] = True,
) -> None:
    """Fit the answer decision to this index and these questions; print the curve and the chosen threshold."""
    from rag.answer.decision import BASE_FEATURES, FEATURES
    from rag.answer.pipeline import Pipeline
    from rag.core.errors import BadInputError
    from rag.evaluate.calibrate import GRID, collect, corpus_version, curve, fit
    from rag.evaluate.questions import load_questions

    settings = settings_of(ctx)
    if not 0.0 < min_answered <= 1.0:
        raise BadInputError(f"--min-answered must be in (0, 1], got {min_answered}")
    sets = [(path.stem, load_questions(path, max_question_chars=settings.max_question_chars)) for path in questions]
    pipeline = Pipeline.from_settings(settings, with_generator=False)
    rows = []
    for name, qs in sets:
        rows += collect(pipeline, qs, source=name, leave_gold_out=leave_gold_out)
    try:
        model = fit(
            rows,
            min_answered=min_answered,
            features=FEATURES if pipeline.reader else BASE_FEATURES,
            trained_on={
                "questions": [str(p) for p in questions],
                "index_dir": str(settings.index_dir),
                "rows": len(rows),
                "reader": pipeline.reader.name if pipeline.reader else None,
                # The corpus it was fitted on, to tell later whether the index it serves still is that corpus.
                **corpus_version(pipeline.index.manifest),
            },
        )
    except ValueError as exc:
        raise BadInputError(f"cannot calibrate: {exc}") from None
    out.print("threshold  answered/answerable  refused/unanswerable  answer P  abstain P  balanced acc.")
    fmt = lambda v: "  n/a" if v is None else f"{v:.3f}"
    for p in curve(rows, [t for t in GRID if 0.1 <= t <= 0.9]):
        mark = "  <- chosen" if abs(p["threshold"] - model.threshold) < 1e-9 else ""
        out.print(
            f"{p['threshold']:.3f}      {fmt(p['answered_of_answerable'])}                "
            f"{fmt(p['refused_of_unanswerable'])}                 {fmt(p['answer_precision'])}     "
            f"{fmt(p['abstain_precision'])}      {fmt(p['balanced_accuracy'])}{mark}"
        )
    target = out_path or settings.index_dir / "decision.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    positives = sum(r.label for r in rows)
    out.print(
        f"fitted on {len(rows)} rows ({positives} answerable with the answer in the evidence); threshold "
        f"{model.threshold}, confident {model.confident}"
    )
    out.print(f"wrote {escape(str(target))}" + ("" if out_path else " (loaded by every command using this index)"))


def squad_cmd(
    squad_json: Annotated[
        Path, typer.Argument(help="SQuAD 2.0 JSON, e.g. ../shared/benchmarks/squad-v2/dev-v2.0.json")
    ],
    out_dir: Annotated[
        Path, typer.Argument(help="writes OUT_DIR/corpus/*.txt (every paragraph) and OUT_DIR/questions.jsonl")
    ],
    limit: Annotated[Optional[int], typer.Option("--limit", help="sample this many questions (default: all)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the question sample")] = 13,
    unanswerable_share: Annotated[
        Optional[float],
        typer.Option(
            "--unanswerable-share", help="fraction of the sample that is unanswerable (default: as in the file)"
        ),
    ] = None,
) -> None:
    """Turn SQuAD 2.0 into a corpus folder and a question file for `rag index` and `rag eval`."""
    from rag.evaluate.squad import export_squad

    result = export_squad(squad_json, out_dir, limit=limit, seed=seed, unanswerable_share=unanswerable_share)
    out.print(
        f"{result.paragraphs} paragraphs in {escape(str(result.corpus_dir))}"
        + (f" ({result.stale_removed} stale removed)" if result.stale_removed else "")
        + f"; {result.answerable + result.unanswerable} questions ({result.answerable} answerable, "
        f"{result.unanswerable} unanswerable) "
        f"in {escape(str(result.questions_path))}"
    )
