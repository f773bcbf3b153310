"""The eval harness: read a question file, ask every question through the real Pipeline, judge, report.

Everything a run can reject (question file, baseline, options, output folder) is checked before any model
loads, so a typo costs a second, not a model load. Judging rules live in rag/evaluate/scoring.py, the report's
shape and Markdown in rag/evaluate/report.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer.provenance import record_holds
from rag.core.errors import BadInputError, GeneratorError, ModelMissingError, RagError
from rag.core.types import Answer, Mode
from rag.evaluate.questions import EvalQuestion, leave_gold_out, load_baseline, load_questions
from rag.evaluate.scoring import (
    CitationCheck,
    Comparison,
    QuestionRecord,
    Retrieved,
    Verdict,
    compare,
    describe_regressions,
    drafted,
    lexical_support,
    missing_groups,
)
from rag.models.drafting import DraftPolicy, GenerationRecord, generator_id, save_record

if TYPE_CHECKING:
    from rag.answer.pipeline import Pipeline
    from rag.core.settings import Settings

SupportCheck = Callable[[str, str], tuple[bool, float]]
Progress = Callable[[int, int, str], None]  # (done, total, id of the question just finished)


class QualityRegressionError(RagError):
    """A quality figure dropped below the baseline by more than the tolerance."""


# --------------------------------------------------------------------------------------------- judging
def judge(
    q: EvalQuestion, answer: Answer | None, supports: SupportCheck, *, error: str | None = None
) -> QuestionRecord:
    """One question's record: what was retrieved and answered, and every verdict on it."""
    record = QuestionRecord(
        id=q.id,
        type=q.type,
        question=q.question,
        history=q.history,
        reference=q.answer,
        must_include=q.must_include,
        gold_docs=q.gold_docs,
        extra=dict(q.model_extra or {}),
        error=error,
        verdict=Verdict(should_abstain=q.should_abstain, passed=False),
    )
    if answer is not None:
        record.standalone_question = answer.standalone_question
        record.retrieved = [
            Retrieved(
                passage_id=sp.passage.passage_id, doc_id=sp.passage.doc_id, rank=sp.rank or i, score=round(sp.score, 6)
            )
            for i, sp in enumerate(answer.sources, start=1)
        ]
        # A folded copy of a gold article is the gold article to a reader: the same story, cited by its twin.
        shown = {sp.passage.passage_id: {sp.passage.doc_id, *(c.doc_id for c in sp.also_in)} for sp in answer.sources}
        record.gold_rank = next(
            (
                r.rank
                for r in sorted(record.retrieved, key=lambda r: r.rank)
                if shown.get(r.passage_id, {r.doc_id}) & set(q.gold_docs)
            ),
            None,
        )
        record.answer, record.abstained, record.abstain_reason = answer.text, answer.abstained, answer.abstain_reason
        record.written_by, record.quoted_because = answer.written_by, answer.quoted_because
        record.confidence = answer.confidence
        record.citations = check_citations(answer, supports)
        record.timings = answer.timings.model_copy()

    v = record.verdict
    v.abstain = "right" if record.abstained == q.should_abstain else "wrong"
    v.citations_valid = sum(c.verifier_ok for c in record.citations)
    v.citations_valid_lexical = sum(c.lexical_ok for c in record.citations)
    answered = answer is not None and not record.abstained
    if q.should_abstain:
        v.passed = record.abstained
    else:
        v.missing = missing_groups(record.answer, q.must_include) if answered else q.must_include
        v.correct = v.passed = answered and not v.missing
        if answered and q.gold_docs:
            v.gold_cited = any({c.doc_id, *(x.doc_id for x in c.also_in)} & set(q.gold_docs) for c in answer.citations)
    return record


def check_citations(answer: Answer, supports: SupportCheck) -> list[CitationCheck]:
    """Replay every shown (sentence, citation) pair through the verifier and the lexical check.

    A citation is a passage that may show several quotes; the sentence is checked against the one of them
    that supports it best, as a reader would look for it under that number."""
    by_number = {c.number: c for c in answer.citations}
    checks = []
    for sentence in answer.sentences:
        if not sentence.supported:
            continue  # shown as [unsupported], with no citation to check
        for number in sentence.citations:
            c = by_number.get(number)
            # A marker with no citation behind it fails both checks.
            # An attribution's lead comes from the article's record, not its words: checked against that record,
            # and the quoted rest against the quotes.
            said = sentence.text.removeprefix(sentence.record).strip().strip("“”") if sentence.record else sentence.text
            record_ok = not sentence.record or (c is not None and record_holds(sentence.record, c))
            replays = [(supports(said, q.text), q.text) for q in (c.all_quotes() if c else []) if q.text]
            (ok, score), quote = max(replays, key=lambda r: r[0]) if replays else ((False, 0.0), "")
            lex_ok, lex_score = lexical_support(said, quote)
            ok, lex_ok = ok and record_ok, lex_ok and record_ok
            checks.append(
                CitationCheck(
                    number=number,
                    doc_id=c.doc_id if c else "",
                    passage_id=c.passage_id if c else "",
                    sentence=sentence.text,
                    quote=quote,
                    verifier_ok=ok,
                    verifier_score=round(score, 4),
                    lexical_ok=lex_ok,
                    lexical_score=lex_score,
                )
            )
    return checks


def run_questions(
    pipeline: Pipeline,
    questions: list[EvalQuestion],
    *,
    mode: Mode,
    top_k: int | None = None,
    on_progress: Progress | None = None,
) -> list[QuestionRecord]:
    records = []
    for done, q in enumerate(questions, start=1):
        try:
            answer = pipeline.ask(
                q.question, mode=mode, top_k=top_k, history=q.history, as_of=q.as_of, exclude_docs=q.left_out
            )
            record = judge(q, answer, pipeline.verifier.supports)
        except (GeneratorError, BadInputError) as exc:
            # One question's failure (a server hiccup, a question the pipeline rejects) is scored as wrong;
            # anything systemic (a missing model or index) still stops the run.
            record = judge(q, None, pipeline.verifier.supports, error=f"{type(exc).__name__}: {exc}")
        records.append(record)
        if on_progress:
            on_progress(done, len(questions), q.id)
    return records


# --------------------------------------------------------------------------------------------- a whole run
@dataclass
class EvalOutcome:
    report: dict[str, Any]
    markdown: str
    out_dir: Path
    tolerance: float
    comparisons: list[Comparison] = field(default_factory=list)

    def summary_markdown(self, failed_limit: int = 20) -> str:
        """What the CLI prints: the full report.md, with the failed list cut short on large sets."""
        from rag.evaluate.report import render_markdown

        return render_markdown(self.report, failed_limit=failed_limit)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regressed]

    def raise_for_regressions(self) -> None:
        if self.regressions:
            raise QualityRegressionError(
                describe_regressions(self.comparisons, self.tolerance) + f" (report: {self.out_dir / 'report.md'})"
            )


def check_options(
    settings: Settings, *, mode: str | None, top_k: int | None, tolerance: float | None
) -> tuple[Mode, int, float]:
    mode = mode or settings.mode
    if mode not in ("generate", "extractive"):
        raise BadInputError(f"--mode must be 'generate' or 'extractive', got {mode!r}")
    k = settings.top_k if top_k is None else top_k
    if not 1 <= k <= settings.max_top_k:
        raise BadInputError(f"--top-k must be between 1 and {settings.max_top_k} (RAG_MAX_TOP_K), got {k}")
    tol = settings.eval_tolerance if tolerance is None else tolerance
    if not 0.0 <= tol <= 1.0:
        raise BadInputError(f"--tolerance must be between 0 and 1, got {tol}")
    return mode, k, tol  # type: ignore[return-value]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_drafts(
    settings: Settings,
    pipeline: Pipeline,
    questions: list[EvalQuestion],
    records: list[QuestionRecord],
    questions_path: Path,
) -> Path:
    """Write how often the configured model's drafts survived verification in this run, and how many of its
    drafted answers were right against quoting the same questions (asked again extractively: no model, ~0.2 s
    each). rag/models/drafting.py reads both."""
    model = generator_id(settings)
    if model is None:
        raise ModelMissingError(
            "cannot tell which generator drafted these answers, so there is nothing to record it under"
        )
    answers = drafted(records)
    if not answers:
        raise BadInputError(
            "the model drafted no answer in this run (all quoted or refused): there is no survival to record"
        )
    survived = sum(r.written_by == "model" for r in answers)
    # Right or wrong is known only where the question has an answer; the rest still count for survival.
    judged = {r.id: r for r in answers if not r.verdict.should_abstain}
    again = run_questions(pipeline, [q for q in questions if q.id in judged], mode="extractive")
    record = GenerationRecord(
        model=model,
        survival=round(survived / len(answers), 4),
        drafted=len(answers),
        compared=len(judged),
        drafted_right=sum(bool(r.verdict.correct) for r in judged.values()),
        quoted_right=sum(bool(r.verdict.correct) for r in again),
        questions=f"{Path(questions_path).parent.name}/{Path(questions_path).name}",
        measured=date.today().isoformat(),
    )
    return save_record(settings.index_dir, record)


def run_eval(
    settings: Settings,
    questions_path: Path,
    *,
    out_dir: Path,
    mode: str | None = None,
    top_k: int | None = None,
    baseline_path: Path | None = None,
    tolerance: float | None = None,
    pipeline: Pipeline | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
    leave_gold_out_run: bool = False,
    record_generation: bool = False,
) -> EvalOutcome:
    """Validate, load models (unless a pipeline is given), ask, judge, write report.json and report.md."""
    from rag.evaluate.report import build_report, git_state, render_markdown, write_report

    git = git_state()
    mode, k, tol = check_options(settings, mode=mode, top_k=top_k, tolerance=tolerance)
    questions = load_questions(questions_path, max_question_chars=settings.max_question_chars)
    if leave_gold_out_run:
        questions = leave_gold_out(questions)
        if not questions:
            raise BadInputError(f"{questions_path} has no answerable question with gold_docs to leave out")
    baseline = load_baseline(baseline_path) if baseline_path else None
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None

    if pipeline is None:
        from rag.answer.pipeline import Pipeline

        pipeline = Pipeline.from_settings(settings, with_generator=mode == "generate")
    if mode == "generate" and pipeline.generator is None:
        # The pipeline would quietly quote instead; scored as generate mode, that would mislead.
        problem = getattr(pipeline, "generator_problem", None) or "no generator is loaded"
        raise ModelMissingError(
            f"generate mode needs the generator ({problem}); run with --mode extractive to score quoting"
        )
    if record_generation:
        if mode != "generate":
            raise BadInputError("--record-generation measures the model's drafts: run it with --mode generate")
        pipeline.drafts = DraftPolicy(draft=True)  # measure the drafts even where an earlier record says to quote
    if on_start:
        on_start(len(questions))
    records = run_questions(pipeline, questions, mode=mode, top_k=k, on_progress=on_progress)

    report = build_report(
        records,
        settings=settings,
        pipeline=pipeline,
        mode=mode,
        k=k,
        questions_path=Path(questions_path),
        questions_sha256=file_sha256(questions_path),
        git=git,
    )
    report["run"]["leave_gold_out"] = leave_gold_out_run
    comparisons: list[Comparison] = []
    if baseline is not None:
        comparisons = compare(report["summary"], baseline["summary"], tol)
        report["baseline"] = {
            "path": str(baseline_path),
            "tolerance": tol,
            "same_questions": baseline.get("run", {}).get("questions_sha256") == report["run"]["questions_sha256"],
            "comparison": [c.model_dump() for c in comparisons],
            "regressed": [c.figure for c in comparisons if c.regressed],
        }
    if record_generation:
        report["run"]["generation_record"] = str(record_drafts(settings, pipeline, questions, records, questions_path))
    markdown = render_markdown(report)
    write_report(report, markdown, out_dir)
    return EvalOutcome(report=report, markdown=markdown, out_dir=out_dir, tolerance=tol, comparisons=comparisons)
