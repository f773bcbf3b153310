"""The rule-made edits of the judge's relation pairs: a sentence turned into a claim it contradicts (negation
inserted or removed, a name swapped, a number or month changed, two names exchanged, an antonym) or one it
entails (a clause dropped, a word reworded). Each returns None when the sentence offers nothing to edit."""

from __future__ import annotations

import random
import re

_AUX = re.compile(r"\b(is|are|was|were|will|has|have|had|can|could|would|should|does|did|must)\b")


_NEGATED = re.compile(
    r"\b(is|are|was|were|will|has|have|had|can|could|would|should|does|did|must) not\b|\bnever\b|\bno longer\b"
)


_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")


MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r")\b")


ANTONYMS = dict(
    pair.split(":")
    for pair in [
        "increase:decrease",
        "rise:fall",
        "rose:fell",
        "won:lost",
        "win:lose",
        "more:fewer",
        "higher:lower",
        "before:after",
        "first:last",
        "largest:smallest",
        "biggest:smallest",
        "best:worst",
        "legal:illegal",
        "open:closed",
        "support:oppose",
        "supports:opposes",
        "supported:opposed",
        "agreed:refused",
        "accepted:rejected",
        "approved:rejected",
        "allowed:banned",
        "early:late",
        "strong:weak",
        "increased:decreased",
        "rising:falling",
        "gained:lost",
        "success:failure",
        "successful:unsuccessful",
        "included:excluded",
        "majority:minority",
        "north:south",
        "east:west",
        "public:private",
        "positive:negative",
        "cheaper:pricier",
        "older:younger",
        "always:never",
    ]
)


ANTONYMS.update({v: k for k, v in list(ANTONYMS.items())})
_ANTONYM = re.compile(r"\b(" + "|".join(sorted(ANTONYMS, key=len, reverse=True)) + r")\b")


_REWORD = {
    "said": "stated",
    "says": "states",
    "announced": "said",
    "about": "roughly",
    "because": "since",
    "also ": "",
    "very ": "",
    "several": "a number of",
}


def negate(s: str, rng: random.Random) -> str | None:
    m = _NEGATED.search(s)
    if m:  # remove the negation: "is not" -> "is", "never" -> "", "no longer" -> "still"
        word = m.group(0)
        new = m.group(1) if m.group(1) else ("still" if word == "no longer" else "")
        return " ".join((s[: m.start()] + new + s[m.end() :]).split())
    found = list(_AUX.finditer(s))
    if not found:
        return None
    m = rng.choice(found[:3])
    return s[: m.end()] + " not" + s[m.end() :]


def swap_name(s: str, pool: list[str], rng: random.Random) -> str | None:
    inside = [n for n in names_in(s) if len(n) > 3]
    if not inside:
        return None
    old = rng.choice(inside)
    others = [p for p in pool if p not in s and old not in p and p not in old and (" " in p) == (" " in old)]
    return s.replace(old, rng.choice(others), 1) if others else None


def change_number(s: str, rng: random.Random) -> str | None:
    spots = [("n", m) for m in _NUMBER.finditer(s)] + [("m", m) for m in _MONTH.finditer(s)]
    if not spots:
        return None
    kind, m = rng.choice(spots)
    if kind == "m":
        new = rng.choice([x for x in MONTHS if x != m.group(0)])
    else:
        raw = m.group(0).replace(",", "")
        value = float(raw)
        if YEAR.fullmatch(raw):
            new = str(int(value) + rng.choice([-6, -3, -2, -1, 1, 2, 5]))
        else:
            factor = rng.choice([0.5, 2, 3, 10, 0.25, 1.5])
            changed = value * factor if value * factor != value else value + rng.randint(1, 9)
            new = f"{changed:,.0f}" if "," in m.group(0) else (f"{changed:g}" if "." in raw else str(round(changed)))
            if new == m.group(0):
                new = str(int(value) + rng.randint(1, 9))
    return s[: m.start()] + new + s[m.end() :]


def exchange_names(s: str, rng: random.Random) -> str | None:
    """Subject and object swapped: two names of the sentence trade places ("A defeated B" -> "B defeated A")."""
    inside = [n for n in names_in(s) if len(n) > 3]
    if len(inside) < 2:
        return None
    a, b = rng.sample(inside[:4], 2)
    if a in b or b in a:
        return None
    out = s.replace(a, "\0").replace(b, a).replace("\0", b)
    return out if out != s else None


def antonym(s: str, rng: random.Random) -> str | None:
    found = list(_ANTONYM.finditer(s))
    if not found:
        return None
    m = rng.choice(found)
    return s[: m.start()] + ANTONYMS[m.group(0)] + s[m.end() :]


def paraphrase(s: str, rng: random.Random) -> str | None:
    """The same fact, said less fully: a clause between commas dropped, a trailing clause cut, or a word
    reworded. Entailed by the original sentence."""
    out = s
    parts = s.split(", ")
    if len(parts) >= 3 and rng.random() < 0.6:  # "A, which B, C" -> "A, C": drop an inner clause or list item
        i = rng.randrange(1, len(parts) - 1)
        out = ", ".join(parts[:i] + parts[i + 1 :])
    elif len(parts) >= 2 and len(parts[0].split()) >= 6 and rng.random() < 0.5:
        out = parts[0] + "."
    for old, new in _REWORD.items():
        if old in out and rng.random() < 0.5:
            out = out.replace(old, new, 1)
    out = " ".join(out.split())
    return out if out != s and len(out.split()) >= 5 else None


YEAR = re.compile(r"\b(1[5-9]\d\d|20[0-2]\d)\b")


_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")


_STARTERS = frozenset(
    [
        "The",
        "A",
        "An",
        "In",
        "On",
        "At",
        "As",
        "After",
        "Before",
        "When",
        "While",
        "If",
        "What",
        "Who",
        "Which",
        "Where",
        "Why",
        "How",
        "It",
        "He",
        "She",
        "They",
        "This",
        "That",
        "These",
        "Those",
        "There",
        "Its",
        "His",
        "Her",
        "Their",
        "But",
        "And",
        "Or",
        "So",
        "For",
        "By",
        "From",
        "During",
        "Since",
        "Although",
        "Though",
        "Many",
        "Most",
        "Some",
        "Other",
        "Both",
        "Each",
    ]
)


def names_in(text: str) -> list[str]:
    """Capitalised word runs, dropping a lone leading function word ("The", "In"): crude, but a swap only
    needs a span that another span of the same article can replace."""
    out: list[str] = []
    for m in _NAME.finditer(text):
        words = m.group(0).split()
        while words and words[0] in _STARTERS:
            words = words[1:]
        if words and len(" ".join(words)) > 2:
            name = " ".join(words)
            if name not in out:
                out.append(name)
    return out
