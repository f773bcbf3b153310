"""Rule-based sentence splitting with character spans.

Runs on every passage and every generated answer, so it is plain regex work with no model:
a candidate boundary is terminal punctuation (plus any closing quotes) followed by whitespace,
and a few rules veto the candidates that are abbreviations, initials or mid-sentence ellipses.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# Terminal punctuation, then closing quotes/brackets, then whitespace or end of line.
# Decimals (5.1) and "U.S.-led" never match because no whitespace follows their period.
_CANDIDATE = re.compile(r"(?:[.!?]|…)+[\"'”’»)\]]*(?=\s|$)")
_LINE = re.compile(r"[^\n]+")
_PRECEDING_TOKEN = re.compile(r"(\S+)$")
_NEXT_WORD = re.compile(r"\s*[\"'“‘«(\[]*(\S*)")

# Titles are virtually never sentence-final, so they never end a sentence.
_TITLES = frozenset(
    """mr mrs ms dr prof sr jr st gen col lt sgt capt cpt maj adm cmdr gov sen rep rev hon pres
    supt insp messrs mme mlle fr amb atty brig gens""".split()
)
# These precede a number ("No. 1", "Sept. 30", "p. 4"); before anything else they may end a sentence.
_BEFORE_NUMBER = frozenset(
    """no nos nr vol vols p pp art fig figs ch sec para op jan feb mar apr jun jul aug sep sept oct
    nov dec""".split()
)
# Ambiguous: end a sentence only when a typical sentence opener follows ("... in the U.S. The ...").
_AMBIGUOUS = frozenset("inc ltd co corp plc llc bros etc approx est dept univ assn ave blvd mt ft".split())
_OPENERS = frozenset(
    """the a an it its he she they we i you this that these those there here but and or so yet in on
    at as after before when while if however meanwhile his her their our my what who why how where
    then also for with by from one some many most both all each several last earlier later since
    despite although though according officials critics""".split()
)
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # U.S, e.g, a.m (final period excluded)


def _is_boundary(line: str, match: re.Match[str]) -> bool:
    """Decide whether the terminal punctuation in `match` really ends a sentence."""
    nxt = _NEXT_WORD.match(line, match.end())
    next_word = nxt.group(1) if nxt else ""
    if not next_word:
        return True  # end of line
    first = next_word[0]
    if first.islower():
        return False  # "Sept. 30" aside, a lowercase continuation means we are mid-sentence
    punct = match.group(0)
    if punct.startswith(("!", "?", "..", "…")):
        return True  # an ellipsis before a capital is treated as a sentence break too
    # Only the last few characters matter; slicing keeps long lines linear.
    tok_match = _PRECEDING_TOKEN.search(line[max(0, match.start() - 40) : match.start()])
    if not tok_match:
        return True
    token = tok_match.group(1).lstrip("\"'“‘«([")
    low = token.lower()
    opener = next_word.strip(".,;:!?\"'”’").lower() in _OPENERS
    if low in _TITLES:
        return False
    if low in _BEFORE_NUMBER:
        return not first.isdigit()
    if low in _AMBIGUOUS or _DOTTED_ACRONYM.match(token):
        return opener
    if len(token) == 1 and token.isalpha() and token.isupper():
        return opener  # an initial: "J. Smith"
    return True


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return (start, end) character spans of the sentences in `text`, end exclusive.

    Spans are stripped of surrounding whitespace and never cross a newline, so a paragraph
    break or a list line always ends a sentence.
    """
    spans: list[tuple[int, int]] = []
    for line_match in _LINE.finditer(text):
        line = line_match.group(0)
        base = line_match.start()
        seg_start = 0
        for cand in _CANDIDATE.finditer(line):
            if cand.end() <= seg_start or not _is_boundary(line, cand):
                continue
            _add_span(spans, line, base, seg_start, cand.end())
            seg_start = cand.end()
        _add_span(spans, line, base, seg_start, len(line))
    return spans


def _add_span(spans: list[tuple[int, int]], line: str, base: int, start: int, end: int) -> None:
    segment = line[start:end]
    stripped = segment.strip()
    if not stripped:
        return
    lead = len(segment) - len(segment.lstrip())
    s = base + start + lead
    spans.append((s, s + len(stripped)))
