"""What kind of answer a question asks for, and whether a sentence holds one.

"Who" wants a person, "when" a date, "how many" a number. A sentence that matches the question's words but
holds no such thing (beyond what the question itself says) rarely answers it, so the answer decision and
the extractive picker both look for the expected kind. Rules, not a tagger: they run on every candidate
sentence of every question in well under a millisecond, and a wrong guess costs only one feature.
"""

from __future__ import annotations

import re
from typing import Literal

AnswerType = Literal["person", "date", "place", "number", "amount"]

MONTHS = "january february march april may june july august september october november december".split()
_MONTH_ABBR = "jan feb mar apr jun jul aug sep sept oct nov dec".split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
    eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds thousand thousands million
    millions billion billions trillion dozen dozens half double twice triple several""".split()
)
_CURRENCY_WORDS = frozenset(
    "dollar dollars euro euros pound pounds yen yuan rupee rupees cents budget cost costs".split()
)

# Order matters: "how much money" is an amount before it is anything else; "which city" a place before a person.
_QUESTION_RULES: list[tuple[AnswerType, re.Pattern[str]]] = [
    (
        "amount",
        re.compile(
            r"\bhow much\b|\bwhat (?:is|was) the (?:cost|price|budget|value)\b|\bhow many (?:dollars|euros|pounds)\b",
            re.I,
        ),
    ),
    (
        "number",
        re.compile(
            r"\bhow (?:many|old|long|far|tall|big|large|often)\b|\bwhat "
            r"(?:number|percentage|percent|share|proportion)\b",
            re.I,
        ),
    ),
    ("date", re.compile(r"\bwhen\b|\b(?:what|which) (?:year|month|day|date|decade|century)\b|\bsince when\b", re.I)),
    (
        "place",
        re.compile(
            r"\bwhere\b|\b(?:what|which) "
            r"(?:city|country|countries|state|continent|region|town|nation|province|capital|island|place|venue)\b",
            re.I,
        ),
    ),
    (
        "person",
        re.compile(
            r"\bwho(?:m|se)?\b|\b(?:what|which) "
            r"(?:person|official|minister|president|leader|man|woman|senator|ceo|secretary|ambassador|spokes\w+)\b",
            re.I,
        ),
    ),
]

_YEAR = re.compile(r"\b(?:1[5-9]|20)\d\d\b")
# A year-shaped number that counts nothing: "a 2008 summit", "in 2008". "2000 troops" is a count; the plural tells.
_CALENDAR_YEAR = re.compile(r"\b(?:1[5-9]|20)\d\d\b(?!\s+[a-z]+s\b)")
_DIGITS = re.compile(r"\d")
# "$4.32", "€ 5", "60%", "3 percent": the number each one states, to tell it from the question's own numbers.
_MONEY = re.compile(r"[$€£¥]\s?(?P<money>\d[\d,.]*\d|\d)|(?P<share>\d[\d,.]*\d|\d)\s?(?:%|percent\b)", re.I)
_CAP_WORD = re.compile(r"\b[A-Z][a-zA-Z’'\-]+")
_WORD = re.compile(r"[A-Za-z’'\-]+|\d[\d,.]*")
_DATE_WORDS = frozenset(MONTHS + _MONTH_ABBR + _WEEKDAYS + "yesterday today tonight weekend".split())
# Capitalised words that are not names: sentence openers and calendar words.
_NOT_NAMES = frozenset(w.capitalize() for w in MONTHS + _WEEKDAYS) | frozenset(
    (
        "The A An In On At It He She They We I This That These Those But And Or If When While After Before As For "
        "With By From To Of According Mr Mrs Ms Dr However Meanwhile There Here His Her Their Our Its Last Next "
        "Earlier Later"
    ).split()
)


def question_type(question: str) -> AnswerType | None:
    for kind, pattern in _QUESTION_RULES:
        if pattern.search(question):
            return kind
    return None


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def has_answer_type(sentence: str, kind: AnswerType | None, question: str = "") -> bool:
    """Whether the sentence holds something of `kind` that the question does not already state."""
    if kind is None:
        return False
    asked = {w.lower() for w in _words(question)}
    words = [w for w in _words(sentence) if w.lower() not in asked]
    lower = {w.lower() for w in words}
    if kind == "date":
        return bool(lower & _DATE_WORDS) or any(_YEAR.fullmatch(w) for w in words)
    if kind == "number":
        years = set(_CALENDAR_YEAR.findall(sentence))
        return any(_DIGITS.search(w) and w.rstrip(".,") not in years for w in words) or bool(lower & _NUMBER_WORDS)
    if kind == "amount":
        # On the sentence itself: the words above have lost their "$" and "%" (a past bug: "$4.32" and "60%" were
        # no amount, so amount questions never saw the answer type they asked for).
        if any((m.group("money") or m.group("share")).lower() not in asked for m in _MONEY.finditer(sentence)):
            return True
        return any(_DIGITS.search(w) for w in words) and bool(lower & (_CURRENCY_WORDS | _NUMBER_WORDS))
    # person and place: a capitalised word that is not the question's and not a sentence opener.
    names = [m.group(0) for m in _CAP_WORD.finditer(sentence)]
    return any(n not in _NOT_NAMES and n.lower() not in asked for n in names)
