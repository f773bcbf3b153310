"""What a request must be before any model or index is touched: a question with words, a known mode, a sane
top_k and dates. The CLI and the API call `check_request` before loading anything; the pipeline checks again."""

from __future__ import annotations

import re
import unicodedata

from rag.core.errors import BadInputError, TooLargeError
from rag.core.settings import Settings
from rag.core.types import ChatTurn, Mode
from rag.search.periods import parse_date
from rag.text.normalise import normalise_text
from rag.text.timeframe import parse_as_of

MODES: tuple[Mode, ...] = ("generate", "extractive")


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise BadInputError(f"mode must be 'generate' or 'extractive', got {mode!r}")
    return mode  # type: ignore[return-value]


def check_question(settings: Settings, question: str) -> str:
    """The question as retrieval sees it: invisible characters gone, whitespace collapsed, at least one word."""
    if not isinstance(question, str) or not question.strip():
        raise BadInputError("the question is empty")
    if len(question) > settings.max_question_chars:
        raise TooLargeError(
            f"the question has {len(question)} characters; the limit is {settings.max_question_chars} "
            "(RAG_MAX_QUESTION_CHARS)"
        )
    # A lone surrogate (JSON "\ud800", undecodable argv bytes) survives the whole search and then fails
    # when the reply is encoded: refuse it here, where the caller can be told why.
    if any("\ud800" <= ch <= "\udfff" for ch in question):
        raise BadInputError("the question is not valid Unicode text (it holds an unpaired surrogate)")
    # Control and format characters (NUL, zero-width space, BOM) are invisible: they must neither count as
    # a question nor reach the tokenizers, where they would glue or split words.
    visible = "".join(ch for ch in question if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    if not visible.strip():
        raise BadInputError("the question is empty")
    if not re.search(r"[^\W_]", visible):
        raise BadInputError("the question has no words, only punctuation or symbols")
    # Typed as the articles are stored (rag/text/normalise.py): an en dash or curly apostrophe must not change
    # which sentence matches.
    return " ".join(normalise_text(visible).split())


def check_history(settings: Settings, history: list[ChatTurn] | None) -> list[ChatTurn]:
    """The turns a follow-up is read against: the last RAG_MAX_HISTORY_TURNS, each at most RAG_MAX_HISTORY_CHARS
    long (a longer one is refused, as an over-long question is, rather than cut where it would change meaning)."""
    turns = settings.max_history_turns
    kept = (history or [])[-turns:] if turns else []
    for turn in kept:
        if len(turn.content) > settings.max_history_chars:
            raise TooLargeError(
                f"a history turn has {len(turn.content)} characters; the limit is {settings.max_history_chars} "
                "(RAG_MAX_HISTORY_CHARS)"
            )
    return kept


def check_request(
    settings: Settings,
    question: str,
    *,
    mode: str | None = None,
    top_k: int | None = None,
    since: str | None = None,
    until: str | None = None,
    as_of: str | None = None,
) -> None:
    """Every check that needs neither model nor index, so a caller can refuse a bad request before loading them."""
    check_question(settings, question)
    parse_as_of(as_of)
    if mode is not None:
        check_mode(mode)
    if top_k is not None and not 1 <= top_k <= settings.max_top_k:
        raise BadInputError(f"top_k must be between 1 and {settings.max_top_k}, got {top_k}")
    since_d, until_d = parse_date(since, field="since"), parse_date(until, field="until")
    if since_d and until_d and since_d > until_d:
        raise BadInputError(f"since {since_d} is after until {until_d}")
