"""Follow-up questions ("And when was that?") rewritten into standalone queries before retrieval."""

from __future__ import annotations

import re

from rag.generator import Generator
from rag.lexical import tokenize
from rag.prompts import PromptSet
from rag.types import ChatTurn

# Words that point back into the conversation instead of naming their subject.
_ANAPHORA = re.compile(r"\b(it|its|that|this|those|these|they|them|their|he|him|his|she|her|there|then|the same|such)\b", re.I)
_LEADING_CONJUNCTION = re.compile(r"^\s*(and|but|so|also|then|what about|how about)\b[\s,]*", re.I)
MAX_CONTEXT_TERMS = 8


def needs_rewrite(question: str, history: list[ChatTurn]) -> bool:
    if not any(t.role == "user" for t in history):
        return False
    content = tokenize(question)
    return bool(_ANAPHORA.search(question) or _LEADING_CONJUNCTION.match(question) or len(content) < 3)


def rule_rewrite(question: str, history: list[ChatTurn]) -> str:
    """Append the subject terms of the latest earlier user turns that the follow-up leaves out."""
    have = set(tokenize(question))
    extra: list[str] = []
    for turn in reversed(history):
        if turn.role != "user":
            continue
        for term in tokenize(turn.content):
            if term not in have and term not in extra:
                extra.append(term)
        if len(extra) >= MAX_CONTEXT_TERMS:
            break
    stripped = _LEADING_CONJUNCTION.sub("", question).strip() or question.strip()
    if not extra:
        return stripped
    return f"{stripped} ({' '.join(extra[:MAX_CONTEXT_TERMS])})"


def _acceptable(candidate: str, question: str, history: list[ChatTurn]) -> bool:
    """A small model's rewrite is used only when it reads as one question about the conversation's subject."""
    candidate = candidate.strip()
    if not candidate or len(candidate) > 300 or "\n" in candidate:
        return False
    terms = set(tokenize(candidate))
    context = set(tokenize(" ".join(t.content for t in history if t.role == "user")))
    return bool(terms & context) and bool(terms & set(tokenize(question)) or len(tokenize(question)) < 2)


def rewrite_followup(
    question: str,
    history: list[ChatTurn],
    *,
    generator: Generator | None = None,
    prompts: PromptSet | None = None,
    max_tokens: int = 48,
) -> str:
    """Model-based when a generator is at hand and its rewrite passes checks; rule-based otherwise."""
    if not needs_rewrite(question, history):
        return question
    if generator is not None and prompts is not None:
        convo = "\n".join(f"{t.role}: {t.content}" for t in history[-6:])
        messages = [{"role": "user", "content": prompts.rewrite.render(history=convo, question=question)}]
        try:
            candidate = "".join(generator.stream(messages, max_tokens=max_tokens, temperature=0.0)).strip().strip('"')
        except Exception:  # noqa: BLE001 - any generator failure falls back to the rules, which always work
            candidate = ""
        if _acceptable(candidate, question, history):
            return candidate
    return rule_rewrite(question, history)
