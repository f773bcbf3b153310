"""Question files for `rag eval`: the JSON Lines format, its checks with the line at fault, the leave-the-gold-out
variant, and the baseline a run is gated on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rag.core.errors import BadInputError
from rag.core.types import ChatTurn
from rag.evaluate.scoring import (
    normalise,
)

if TYPE_CHECKING:
    pass

SupportCheck = Callable[[str, str], tuple[bool, float]]
Progress = Callable[[int, int, str], None]  # (done, total, id of the question just finished)

MAX_REPORTED_ERRORS = 20


class EvalQuestion(BaseModel):
    """One line of a question file. Unknown fields are kept (model_extra) and carried into the report."""

    model_config = ConfigDict(extra="allow")

    id: str
    question: str
    answer: str | None = None  # reference text, for readers of the report only
    must_include: list[list[str]]  # groups of alternatives; [] = the articles do not say, abstain
    gold_docs: list[str] = Field(default_factory=list)
    type: str = "untyped"
    history: list[ChatTurn] = Field(default_factory=list)

    @field_validator("id", "question", "type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("must_include")
    @classmethod
    def _groups(cls, groups: list[list[str]]) -> list[list[str]]:
        for i, group in enumerate(groups):
            if not group:
                raise ValueError(f"group {i} is empty (a group needs at least one alternative; use [] for no groups)")
            for alt in group:
                if not normalise(alt):
                    raise ValueError(f"group {i} has an alternative with no letters or digits: {alt!r}")
        return groups

    @property
    def should_abstain(self) -> bool:
        return not self.must_include

    @property
    def as_of(self) -> str | None:
        """The date the question was asked from: `as_of`, or `question_date` as RealTime QA files name it."""
        extra = self.model_extra or {}
        value = extra.get("as_of") or extra.get("question_date")
        return str(value) if value else None

    @property
    def left_out(self) -> frozenset[str]:
        """Articles this question is asked without (leave-the-gold-out runs)."""
        return frozenset((self.model_extra or {}).get("left_out", []))


def leave_gold_out(questions: list[EvalQuestion]) -> list[EvalQuestion]:
    """Each answerable question with gold articles, asked again without them: the articles left no longer say,
    so the right behaviour is to abstain. Unanswerable questions and ones without gold articles drop out."""
    out = []
    for q in questions:
        if q.should_abstain or not q.gold_docs:
            continue
        extra = dict(q.model_extra or {})
        extra["left_out"] = list(q.gold_docs)
        # Kept aside, not judged: an archive often holds another article that says it too (a follow-up, another
        # outlet), and the report counts those answers apart from wrong ones.
        extra["reference_groups"] = q.must_include
        out.append(
            EvalQuestion.model_validate(
                {**q.model_dump(exclude=set(extra)), "must_include": [], "gold_docs": [], **extra}
            )
        )
    return out


def _pydantic_problem(exc: ValidationError) -> str:
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "line"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)


def load_questions(path: Path, *, max_question_chars: int | None = None) -> list[EvalQuestion]:
    """Validate the whole file; report every bad line (up to MAX_REPORTED_ERRORS) with its number."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"question file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    questions: list[EvalQuestion] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(data, dict):
            errors.append(f"line {number}: expected a JSON object, got {type(data).__name__}")
            continue
        try:
            q = EvalQuestion.model_validate(data)
        except ValidationError as exc:
            errors.append(f"line {number}: {_pydantic_problem(exc)}")
            continue
        if q.id in first_line:
            errors.append(f"line {number}: duplicate id {q.id!r} (first on line {first_line[q.id]})")
        elif max_question_chars is not None and len(q.question) > max_question_chars:
            errors.append(
                f"line {number}: question has {len(q.question)} characters; the limit is {max_question_chars} "
                "(RAG_MAX_QUESTION_CHARS)"
            )
        elif q.as_of is not None and not _is_date(q.as_of):
            errors.append(f"line {number}: as_of/question_date {q.as_of!r} is not a date (YYYY-MM-DD)")
        first_line.setdefault(q.id, number)
        questions.append(q)
    if errors:
        more = f"; and {len(errors) - MAX_REPORTED_ERRORS} more" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise BadInputError(f"{path}: " + "; ".join(errors[:MAX_REPORTED_ERRORS]) + more)
    if not questions:
        raise BadInputError(f"{path} holds no questions")
    return questions


def _is_date(value: str) -> bool:
    from rag.text.timeframe import parse_as_of

    try:
        parse_as_of(value)
    except BadInputError:
        return False
    return True


def read_json(path: Path, what: str) -> Any:
    """A JSON file's content, or one BadInputError saying which `what` could not be read and why."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{what} {path} is not valid JSON: {exc}") from None


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier report.json; only its `summary` (and `run` for a sanity note) is used."""
    data = read_json(path, "baseline")
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise BadInputError(f"baseline {path} has no `summary` object; pass a report.json written by `rag eval`")
    return data
