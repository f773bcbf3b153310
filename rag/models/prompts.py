"""Prompt templates live as files in prompts/; each declares its slots, checked when loaded."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import RagError

# Every template and the exact slots it must carry: a missing or unknown slot is a broken file.
SLOTS: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "answer": frozenset({"sources", "question"}),
    "source": frozenset({"number", "title", "source", "date", "text"}),
    "abstain": frozenset({"topic"}),
    "rewrite": frozenset({"history", "question"}),
}


class PromptError(RagError):
    """A prompt file is missing or its slots are wrong."""


def default_prompts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "prompts"


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    def render(self, **values: object) -> str:
        return self.text.format(
            **{k: neutralise_special_tokens(v) if isinstance(v, str) else v for k, v in values.items()}
        )


# Chat-template control tokens (ChatML/SmolLM2 and Llama 3 <|...|>, Llama 2/Mistral [INST] <<SYS>> <s>, Gemma
# <start_of_turn>). llama.cpp parses them in prompt text, so an article or a question carrying one could end
# the user turn and open a fake system turn. A space after the first character leaves them readable, inert.
_SPECIAL_TOKEN = re.compile(r"<\||\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>", re.I)


def neutralise_special_tokens(text: str) -> str:
    return _SPECIAL_TOKEN.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)


def _slots_of(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def load_template(directory: Path, name: str) -> Template:
    path = directory / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8").strip("\n")
    except OSError as exc:
        raise PromptError(f"prompt template {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        found = _slots_of(text)
    except ValueError as exc:
        raise PromptError(f"prompt template {path} is malformed: {exc}") from exc
    expected = SLOTS[name]
    if found != expected:
        missing, unknown = sorted(expected - found), sorted(found - expected)
        raise PromptError(f"prompt template {path}: missing slots {missing}, unknown slots {unknown}")
    return Template(name, text)


@dataclass(frozen=True)
class PromptSet:
    system: Template
    answer: Template
    source: Template
    abstain: Template
    rewrite: Template

    @classmethod
    def load(cls, directory: Path | None = None) -> PromptSet:
        directory = directory or default_prompts_dir()
        return cls(**{name: load_template(directory, name) for name in SLOTS})
