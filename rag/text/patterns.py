"""The one number pattern and the one name pattern every stage uses to say which numbers and names a text holds."""

from __future__ import annotations

import re

NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
# Capitalised words not at a sentence's start: a sentence's first word is capitalised whatever it is.
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w’'-]+)")


def numbers_in(text: str) -> set[str]:
    return {m.replace(",", "") for m in NUMBER.findall(text)}


def names_in(text: str) -> set[str]:
    """Capitalised words that are not merely sentence-initial: the names a claim stands on."""
    out = set()
    for match in NAME.finditer(text.strip()):
        word = match.group(1).strip("’'-")
        if word.lower() not in _COMMON_CAPS and len(word) > 1:
            out.add(word)
    return out


_COMMON_CAPS = frozenset(
    "i the a an he she it they we you this that these those what who which when where why how "
    "and but or if in on at to of for by with from as is are was were".split()
)
