"""An eval run written down: report.json for machines and the next baseline, report.md for people."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.evaluate.scoring import QUALITY_KEYS, QuestionRecord, figures, figures_by_type, split_figures

if TYPE_CHECKING:
    from rag.answer.pipeline import Pipeline
    from rag.core.settings import Settings

# Secrets never belong in a report that gets committed as a baseline.
_SECRET_SETTINGS = {"openai_api_key", "milvus_token", "api_key"}
ANSWER_PREVIEW_CHARS = 240

LABELS = {
    "passed": "questions passed (right answer or right abstention)",
    "answer_accuracy": "answer accuracy (answerable)",
    "abstain_precision": "abstain precision",
    "abstain_recall": "abstain recall",
    "citation_validity": "citation validity (verifier)",
    "citation_validity_lexical": "citation validity (lexical)",
    "gold_doc_cited": "gold doc cited",
    "hit_at_1": "retrieval hit@1",
    "hit_at_5": "retrieval hit@5",
    "mrr": "retrieval MRR",
    "latency_p50_s": "total latency p50 (s)",
    "latency_p95_s": "total latency p95 (s)",
    "retrieval_p50_s": "retrieval p50 (s)",
    "retrieval_p95_s": "retrieval p95 (s)",
    "ttft_p50_s": "time to first token p50 (s)",
    "ttft_p95_s": "time to first token p95 (s)",
    "prompt_tokens_mean": "prompt tokens, mean",
    "tokens_per_s_mean": "generation tokens/s, mean",
}


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the checkout, or nulls outside git (an installed package, a tarball)."""

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def build_report(
    records: list[QuestionRecord],
    *,
    settings: Settings,
    pipeline: Pipeline,
    mode: str,
    k: int,
    questions_path: Path,
    questions_sha256: str,
    git: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`git` is best taken when the run starts: a long run can outlive the commit it ran on."""
    summary, details = split_figures(figures(records, k))
    generator = getattr(pipeline.generator, "name", None) if mode == "generate" else None
    index = pipeline.index
    return {
        "summary": summary,
        "details": details,
        "by_type": figures_by_type(records, k),
        "run": {
            "mode": mode,
            "top_k": k,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            **(git if git is not None else git_state()),
            "questions_file": str(questions_path),
            "questions_sha256": questions_sha256,
            "embedding_model": pipeline.embedder.name,
            "generator": generator,
            "index": {
                "dir": str(settings.index_dir),
                "generation": index.generation,
                "documents": len(index.articles),
                "passages": len(index.passages),
            },
            "settings": settings.model_dump(mode="json", exclude=_SECRET_SETTINGS),
        },
        "questions": [r.model_dump(mode="json") for r in records],
    }


def write_report(report: dict[str, Any], markdown: str, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")


# --------------------------------------------------------------------------------------------- Markdown
def fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}" if key.endswith("_s") or "tokens" in key else f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _figure_rows(
    keys: list[str], values: dict[str, Any], baseline: dict[str, dict[str, Any]] | None
) -> list[list[str]]:
    rows = []
    for key in keys:
        row = [LABELS.get(key, key), fmt(values.get(key), key)]
        if baseline is not None:
            c = baseline.get(key)
            if c is None:
                row += ["", ""]
            else:
                change = "" if c["delta"] is None else f"{c['delta']:+.3f}" + (" **dropped**" if c["regressed"] else "")
                row += [fmt(c["baseline"], key), change]
        rows.append(row)
    return rows


def what_went_wrong(q: dict[str, Any], k: int) -> list[str]:
    v = q["verdict"]
    problems = []
    if q.get("error"):
        problems.append(f"error: {q['error']}")
    elif v["should_abstain"] and not q["abstained"]:
        problems.append("answered, but the articles do not say: it should have abstained")
    elif not v["should_abstain"] and q["abstained"]:
        problems.append(f"abstained on an answerable question ({q.get('abstain_reason') or 'no reason given'})")
    elif v["missing"]:
        problems.append("answer lacks " + "; ".join(" / ".join(f'"{a}"' for a in group) for group in v["missing"]))
    if q["gold_docs"] and q["gold_rank"] is None:
        problems.append(f"no gold document in the top {k} passages")
    if v.get("gold_cited") is False:
        problems.append("no citation points to a gold document")
    for c in q["citations"]:
        failed = [name for name, ok in (("verifier", c["verifier_ok"]), ("lexical check", c["lexical_ok"])) if not ok]
        if failed:
            problems.append(
                f"citation [{c['number']}] fails the {' and the '.join(failed)} (scores {c['verifier_score']:.2f} / "
                f"{c['lexical_score']:.2f})"
            )
    return problems


def render_markdown(report: dict[str, Any], *, failed_limit: int | None = None) -> str:
    run, summary, details = report["run"], report["summary"], report["details"]
    k = run["top_k"]
    baseline = {c["figure"]: c for c in report["baseline"]["comparison"]} if report.get("baseline") else None
    head = ["figure", "value"] + (["baseline", "change"] if baseline is not None else [])
    lines = [
        "# Eval report",
        "",
        f"- questions: `{run['questions_file']}` ({summary['n']}: {details['n_answerable']} answerable, "
        f"{details['n_unanswerable']} unanswerable)",
        f"- mode: {run['mode']}, top_k {k}; embedder {run['embedding_model']}"
        + (f", generator {run['generator']}" if run["generator"] else ""),
        f"- index: {run['index']['documents']} documents / {run['index']['passages']} passages",
        f"- commit: {run['git_commit'] or 'unknown'}{' (uncommitted changes)' if run['git_dirty'] else ''}; "
        f"{run['timestamp']}",
    ]
    if report.get("baseline"):
        b = report["baseline"]
        verdict = "**dropped: " + ", ".join(b["regressed"]) + "**" if b["regressed"] else "no quality figure dropped"
        lines.append(
            f"- baseline: `{b['path']}` (tolerance {b['tolerance']:g}): {verdict}"
            + ("" if b["same_questions"] else "; note: the baseline was run on a different question file")
        )
    if run.get("leave_gold_out") and details["n_unanswerable"]:
        answered = (
            details["n_unanswerable"] - details["n_abstained"]
        )  # a leave-gold-out run asks only "unanswerable" questions
        lines.append(
            f"- leave-the-gold-out: {answered} of {details['n_unanswerable']} answered without their gold articles; "
            f"{details.get('left_out_answered_with_reference', 0)} of those still hold the reference answer (another "
            "article carries it)"
        )
    if details["n_errors"]:
        lines.append(f"- {details['n_errors']} question(s) failed with an error")

    quality = [
        "passed",
        "answer_accuracy",
        "abstain_precision",
        "abstain_recall",
        "citation_validity",
        "citation_validity_lexical",
        "gold_doc_cited",
        "hit_at_1",
        "hit_at_5",
        "mrr",
    ]
    if k != 5:
        quality.append(f"hit_at_{k}")
    speed = [
        "latency_p50_s",
        "latency_p95_s",
        "retrieval_p50_s",
        "retrieval_p95_s",
        "ttft_p50_s",
        "ttft_p95_s",
        "prompt_tokens_mean",
        "tokens_per_s_mean",
    ]
    values = {**summary, **details}
    lines += ["", "## Quality", "", *_table(head, _figure_rows(quality, values, baseline))]
    lines += ["", "## Speed (not gated)", "", *_table(head, _figure_rows(speed, values, baseline))]

    type_head = [
        "type",
        "n",
        "accuracy",
        "abstain P",
        "abstain R",
        "citations ok",
        "gold cited",
        "hit@1",
        "hit@5",
        "MRR",
        "p50 s",
    ]
    type_keys = [*QUALITY_KEYS, "latency_p50_s"]
    type_rows = [[t, str(f["n"]), *(fmt(f[key], key) for key in type_keys)] for t, f in report["by_type"].items()]
    lines += ["", "## By question type", "", *_table(type_head, type_rows)]

    # Failed: the wrong behaviour, or a shown citation that does not hold up; retrieval notes ride along.
    failed = [
        (q, what_went_wrong(q, k))
        for q in report["questions"]
        if not q["verdict"]["passed"] or not all(c["verifier_ok"] and c["lexical_ok"] for c in q["citations"])
    ]
    lines += ["", f"## Failed questions ({len(failed)} of {summary['n']})", ""]
    if not failed:
        lines.append("None.")
    for q, problems in failed[:failed_limit]:
        answer = " ".join(q["answer"].split())
        if len(answer) > ANSWER_PREVIEW_CHARS:
            answer = answer[:ANSWER_PREVIEW_CHARS] + "…"
        lines.append(f"- **{q['id']}** ({q['type']}) {q['question']}")
        lines += [f"  - {p}" for p in problems]
        lines.append(f"  - answer: {answer or '(none)'}")
    if failed_limit is not None and len(failed) > failed_limit:
        lines.append(f"- … and {len(failed) - failed_limit} more in report.md")
    return "\n".join(lines) + "\n"
