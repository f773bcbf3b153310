"""Split a cleaned article into overlapping, sentence-aligned passages.

Passages are what we embed and cite, so they hold whole sentences (a cut sentence is a bad
citation) and carry exact character spans into Article.text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from rag.core.errors import BadInputError
from rag.core.types import Article, Passage
from rag.text.sentences import split_sentences

__all__ = ["chunk_article"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class _Unit:
    """A sentence, or a word-window of a sentence too long to fit a passage on its own."""

    start: int
    end: int
    words: int


def _units(text: str, chunk_size: int) -> list[_Unit]:
    units: list[_Unit] = []
    for start, end in split_sentences(text):
        words = list(_WORD.finditer(text, start, end))
        if len(words) <= chunk_size:
            units.append(_Unit(start, end, len(words)))
            continue
        for i in range(0, len(words), chunk_size):
            window = words[i : i + chunk_size]
            units.append(_Unit(window[0].start(), window[-1].end(), len(window)))
    return units


def chunk_article(article: Article, *, chunk_size: int, chunk_overlap: int) -> list[Passage]:
    """Pack whole sentences into passages of at most `chunk_size` words.

    Each passage after the first starts with trailing sentences of the previous one totalling
    at most `chunk_overlap` words, so a fact split across a boundary is still retrievable.
    """
    if chunk_size < 1:
        raise BadInputError(f"chunk_size must be at least 1, got {chunk_size}")
    if chunk_overlap < 0:
        raise BadInputError(f"chunk_overlap must not be negative, got {chunk_overlap}")
    if chunk_overlap >= chunk_size:
        raise BadInputError(f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})")

    text = article.text
    units = _units(text, chunk_size)
    passages: list[Passage] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + units[j].words <= chunk_size):
            words += units[j].words
            j += 1
        start, end = units[i].start, units[j - 1].end
        n = len(passages)
        passages.append(
            Passage(
                passage_id=f"{article.doc_id}#{n}",
                doc_id=article.doc_id,
                ordinal=n,
                text=text[start:end],
                start=start,
                end=end,
                meta=article.meta.model_copy(),
            )
        )
        if j >= len(units):
            break
        # The overlap must leave room for the next new sentence, or the next passage would hold
        # only repeated text; stopping at k > i guarantees forward progress.
        budget = min(chunk_overlap, chunk_size - units[j].words)
        k, overlap = j, 0
        while k - 1 > i and overlap + units[k - 1].words <= budget:
            overlap += units[k - 1].words
            k -= 1
        i = k
    return passages


def url_slug(url: str | None) -> str | None:
    """The words of a news url's slug ("/2022/06/15/business/ford-recall/index.html" -> "ford recall"): what
    the newsroom called the story, and the only words left when a scrape lost the headline (or the body to a
    video player). None when the url has no slug of two words or more."""
    if not url:
        return None
    segments = [s for s in urlsplit(url).path.split("/") if "-" in s]
    words = [w for w in max(segments, key=lambda s: s.count("-"), default="").lower().split("-") if w.isalpha()]
    return " ".join(words) if len(words) >= 2 else None
