"""The one tokenizer and stemmer: BM25, coverage, citation checks and scoring all read words through these."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves also said says say would could may might
    must shall us""".split()
)
_TOKEN = re.compile(r"[\w][\w'’.-]*\w|\w", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords; keeps numbers like 5.1 and names like NATO-Ukraine whole and split."""
    out: list[str] = []
    for raw in _TOKEN.findall(text.lower()):
        tok = raw.replace("’", "'").rstrip(".")
        if tok.endswith("'s"):
            tok = tok[:-2]
        if not tok or tok in STOPWORDS:
            continue
        out.append(tok)
        if "-" in tok:  # "nato-ukraine" should also match "nato" and "ukraine"
            out.extend(p for p in tok.split("-") if p and p not in STOPWORDS)
    return out


_SUFFIXES = ("ing", "ed", "es", "s", "e")
PREFIX_LENGTH = 6  # longer words are cut to this many letters: the cheap stemmer IR studies find as good as Porter's


def stem(token: str) -> str:
    """A light stemmer so "promised"/"promise", "years"/"year", and also "Ukraine"/"Ukrainian" and
    "criterion"/"criteria" meet when judging coverage: words are cut to six letters, which also joins a country with its
    adjective (suffix rules never do), then lose one suffix. BM25 keeps exact tokens: its index is stored
    and its ranking is already good. PyStemmer's Snowball (the stemmer bm25s takes) was measured in its place and
    lost on every set it moved, with or without the six-letter cut (fresh set accuracy 0.733 / 0.800 against
    0.867; bench/README.md, "The stemmer: ours against Snowball")."""
    if len(token) <= 4 or not token.isalpha():
        return token
    token = token[:PREFIX_LENGTH]
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 4:
            return token[: -len(suffix)]
    return token


def content_terms(text: str) -> set[str]:
    return {stem(t) for t in tokenize(text)}
