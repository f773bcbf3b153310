"""Follow-up questions ("And when was that?") rewritten into standalone queries before retrieval."""

from __future__ import annotations

import re

from rag.core.types import ChatTurn
from rag.models.generator import Generator
from rag.models.prompts import PromptSet
from rag.text.patterns import names_in
from rag.text.tokens import tokenize
from rag.verify.support import QUESTION_WORDS

# A person named only in an earlier turn: unresolved unless the question names someone before the pronoun
# ("What did Kuleba say he wants?" stands alone; "What did he say Ukraine wants?" does not, whatever else it names).
_PERSONAL = re.compile(r"\b(he|him|his|she|her|hers)\b", re.I)
# Words that point back at a thing, a place or a time. They are often resolved inside the question itself
# ("the floating library in Lowmere ... its shelves"), so they count only in a question with few words of its own.
_POINTERS = re.compile(r"\b(it|its|that|this|those|these|they|them|their|there|then|the same|such)\b", re.I)
# Definite nouns standing in for an earlier turn's subject ("Where will Tallinn raise the issue?").
_STAND_INS = re.compile(
    r"\bthe (issue|matter|subject|topic|case|idea|plan|proposal|decision|move|step|deal|agreement|event|incident"
    r"|situation|problem|request)\b",
    re.I,
)
_LEADING_CONJUNCTION = re.compile(r"^\s*(and|but|so|also|then|what about|how about)\b[\s,]*", re.I)
# "Few words of its own": up to this many content words (names included) besides the pointing words.
FEW_TERMS = 3
MAX_CONTEXT_TERMS = 8


def _own_terms(question: str) -> list[str]:
    """Content words the question brings itself: not stopwords, question words or stand-in nouns."""
    stand_ins = {m.group(1).lower() for m in _STAND_INS.finditer(question)}
    return [t for t in tokenize(question) if t not in stand_ins and t not in QUESTION_WORDS]


def _unresolved_person(question: str) -> bool:
    pronoun = _PERSONAL.search(question)
    return pronoun is not None and not names_in(question[: pronoun.start()])


def needs_rewrite(question: str, history: list[ChatTurn]) -> bool:
    """True for a question that cannot stand alone: it leans on the conversation for its subject.

    Rewriting a question that stands alone drags the old topic into a new one (a question about a library
    searched with "nato ukraine council" appended), so each cue counts only with little else to go on."""
    if not any(t.role == "user" for t in history):
        return False
    if _unresolved_person(question):
        return True
    few = len(_own_terms(question)) <= FEW_TERMS
    pointing = bool(_POINTERS.search(question) or _STAND_INS.search(question) or _LEADING_CONJUNCTION.match(question))
    return (pointing and few) or not _own_terms(question)


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


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold().rstrip("?.! ") == " ".join(b.split()).casefold().rstrip("?.! ")


def _acceptable(candidate: str, question: str, history: list[ChatTurn]) -> bool:
    """A small model's rewrite is used only when it reads as one question about the conversation's subject,
    or when it returns the question unchanged: the model judged it to stand alone. An unchanged question that
    still says "he" with no name is a rewrite not done, not a judgment."""
    candidate = candidate.strip()
    if not candidate or len(candidate) > 300 or "\n" in candidate:
        return False
    if _same_text(candidate, question):
        return not _unresolved_person(question)
    if question.rstrip().endswith("?") and not candidate.endswith("?"):
        return False  # an answer, not a rewrite ("The NATO-Ukraine Commission is set to be upgraded ...")
    terms = set(tokenize(candidate))
    if any(name.lower() not in terms for name in names_in(question) if name.lower() in set(tokenize(name))):
        return (
            False  # it dropped what the follow-up asks about ("... about Crimea?" -> "... talk about in Washington?")
        )
    context = set(tokenize(" ".join(t.content for t in history if t.role == "user")))
    own = set(tokenize(question))
    return bool(terms & context) and bool(terms & own or not own)


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
        except Exception:
            candidate = ""
        if _acceptable(candidate, question, history):
            return candidate
    return rule_rewrite(question, history)
