"""Whether the generator's drafts earn their time: how often they survive verification, measured per model.

A drafted answer whose sentences fail verification is thrown away and the evidence quoted instead, so the
seconds spent writing it bought nothing, and a draft that survives can still drop the fact the quoted sentence
held. `rag eval --mode generate --record-generation` measures, for the configured model, the share of its
drafts that survived on a question set, and how many of its drafted answers were right against quoting the same
questions; it records both (`generation.json` in the index directory; the package ships the record of its
default model). Generate mode then quotes at once, without calling the model, when the model's recorded survival
is below `RAG_GENERATION_MIN_SURVIVAL`, or its drafted answers were right less often than the quotes. A model
never measured drafts: nothing says its drafts are worse than quoting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from rag.core.errors import BadInputError, ModelMissingError
from rag.core.settings import Settings

RECORD_FILE = "generation.json"


class GenerationRecord(BaseModel):
    model: str  # generator_id()
    survival: float = Field(ge=0.0, le=1.0)  # share of drafted answers whose own sentences survived verification
    drafted: int = Field(ge=0)  # answers the model drafted in that run
    # Of the drafted answers to questions with a known answer: how many were right, and how many quoting the same
    # questions got right. None in a record written before they were measured.
    compared: int | None = Field(None, ge=0)
    drafted_right: int | None = Field(None, ge=0)
    quoted_right: int | None = Field(None, ge=0)
    questions: str  # the question file it was measured on
    measured: str  # ISO date


@dataclass(frozen=True)
class DraftPolicy:
    draft: bool
    reason: str | None = None  # why generate mode quotes instead, in words


def generator_id(settings: Settings) -> str | None:
    """What a record is keyed by: the GGUF's file name and size (a re-quantised file differs), or the server's model."""
    if settings.generator_backend == "openai":
        return f"openai:{settings.openai_model}"
    if settings.generator_backend != "llama_cpp":
        return None
    from rag.models.generator import default_gguf_path

    try:
        path = Path(settings.gguf_path or default_gguf_path())
        return f"gguf:{path.name}:{path.stat().st_size}"
    except (ModelMissingError, OSError):
        return None


def _read(text: str, where: str) -> dict[str, GenerationRecord]:
    try:
        rows = json.loads(text)
        return {r["model"]: GenerationRecord.model_validate(r) for r in rows}
    except (json.JSONDecodeError, TypeError, KeyError, ValidationError) as exc:
        raise BadInputError(
            f"{where} is not a list of generation records ({exc}); delete it or rerun `rag eval --record-generation`"
        ) from None


def load_records(index_dir: Path | None) -> dict[str, GenerationRecord]:
    """The packaged records, overridden by the index's own (measured on its corpus)."""
    records = _read(
        resources.files("rag.models").joinpath(RECORD_FILE).read_text(encoding="utf-8"), f"the packaged {RECORD_FILE}"
    )
    own = Path(index_dir) / RECORD_FILE if index_dir else None
    if own is not None and own.is_file():
        records.update(_read(own.read_text(encoding="utf-8"), str(own)))
    return records


def save_record(index_dir: Path, record: GenerationRecord) -> Path:
    path = Path(index_dir) / RECORD_FILE
    records = _read(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else {}
    records[record.model] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([r.model_dump() for r in records.values()], indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def draft_policy(settings: Settings) -> DraftPolicy:
    """Draft unless the model's record shows its drafts fail verification too often, or, where measured, that its
    drafted answers were right less often than quoting the same questions (0 = RAG_GENERATION_MIN_SURVIVAL off)."""
    model = generator_id(settings)
    record = load_records(settings.index_dir).get(model) if model else None
    if record is None or settings.generation_min_survival <= 0:
        return DraftPolicy(draft=True)
    if record.survival < settings.generation_min_survival:
        return DraftPolicy(
            draft=False,
            reason=(
                f"its drafts survived verification in {record.survival:.0%} of {record.drafted} answers "
                f"({record.questions}), "
                f"below RAG_GENERATION_MIN_SURVIVAL={settings.generation_min_survival:.0%}"
            ),
        )
    if (
        record.compared
        and record.drafted_right is not None
        and record.quoted_right is not None
        and record.drafted_right < record.quoted_right
    ):
        return DraftPolicy(
            draft=False,
            reason=(
                f"its drafted answers were right in {record.drafted_right} of {record.compared} questions "
                f"({record.questions}) "
                f"where quoting was right in {record.quoted_right}"
            ),
        )
    return DraftPolicy(draft=True)
