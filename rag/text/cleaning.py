"""The line-level cleaner: keeps an article's body, drops scrape clutter, and reads metadata from the text.

Scraped pages bury the article between menus, donation appeals and headline lists. The cleaner
judges each line by its shape (sentence punctuation, length, headline runs), its vocabulary
(subscribe, follow us, ...) and its position (clutter clusters before the first and after the
last body paragraph), never by a list of known lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.core.types import ArticleMeta
from rag.text.dates import DATE, DATE_LABEL, PARTIAL_DATE, TIME, WEEKDAY, iso_date, parse_date
from rag.text.normalise import normalise_text
from rag.text.outlets import known_outlet

__all__ = ["CleanResult", "clean_text", "parse_date"]
from rag.text import page_patterns as page


@dataclass
class CleanResult:
    text: str
    removed_lines: list[str] = field(default_factory=list)
    meta: ArticleMeta = field(default_factory=ArticleMeta)


@dataclass
class _Unit:
    text: str
    lines: list[str]
    drop: str | None = None  # why the cleaner removed it


@dataclass
class _Hints:
    """Metadata candidates; the lowest rank wins, then the earliest."""

    found: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)

    def add(self, key: str, rank: int, value: str | None) -> None:
        value = (value or "").strip(" ,;:|-–—")
        if value and value.lower() not in page.NOT_PUBLISHER:
            bucket = self.found.setdefault(key, [])
            bucket.append((rank, len(bucket), value))

    def best(self, key: str) -> str | None:
        return min(self.found[key])[2] if key in self.found else None


def _words(text: str) -> int:
    return len(text.split())


def _first_alnum(text: str) -> str:
    return next((ch for ch in text if ch.isalnum()), "")


def _is_body(text: str) -> bool:
    """Prose shape: starts like a sentence and ends like one, or is too long to be a headline."""
    first = _first_alnum(text)
    if not first or first.islower():
        return False
    if page.CUT_SHORT.search(text) and _words(text) <= 30:
        return False
    return (
        bool(page.TERMINAL.search(text)) or _words(text) >= 25 or (bool(page.LABEL.match(text)) and _words(text) >= 12)
    )


def _weak(text: str, publisher: str | None) -> int:
    outside = page.QUOTED.sub(" ", text)
    return len(page.WEAK.findall(outside)) + (1 if publisher and publisher in text else 0)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _looks_wrapped(block: list[str]) -> bool:
    """A hard-wrapped paragraph: all but the last line share one width and sentences end mid-line."""
    if len(block) < 2:
        return False
    widths = [len(line) for line in block[:-1]]
    return (
        min(widths) >= 40
        and max(widths) - min(widths) <= 20
        and max(widths) <= 120
        and any(not page.TERMINAL.search(line) for line in block[:-1])
        and bool(page.SENTENCE_END.search(" ".join(block)))
    )


def _units(raw: str, unwrap: bool) -> list[_Unit]:
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]", "", text)
    text = re.sub(r"[ \t\f\v\u00a0\u2007\u202f]+", " ", text)
    units: list[_Unit] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        if unwrap and _looks_wrapped(lines):
            units.append(_Unit(" ".join(lines), lines))
            continue
        block_units: list[_Unit] = []
        for line in lines:
            prev = block_units[-1] if block_units else None
            # A line that starts in lowercase after one that did not finish a sentence continues it; a bare
            # URL ("https://...") starts lowercase too but is a metadata line of its own.
            if (
                unwrap
                and prev
                and _first_alnum(line).islower()
                and not page.TERMINAL.search(prev.text)
                and not prev.text.endswith(":")
                and not page.TIMESTAMP.match(prev.text)
                and not page.URL.match(line)
            ):
                prev.text += " " + line
                prev.lines.append(line)
            else:
                block_units.append(_Unit(line, [line]))
        units.extend(block_units)
    return units


def _date_line(text: str, hints: _Hints) -> bool:
    """A line that is only a date (with time, weekday, labels, a place or the publisher's name)."""
    dates = [m for m in DATE.finditer(text) if iso_date(m)]
    if not dates:
        return False
    residue = text
    for rx in (DATE, PARTIAL_DATE, TIME, WEEKDAY, DATE_LABEL):
        residue = rx.sub(" ", residue)
    if _words(re.sub(r"[^\w'’ ]+", " ", residue)) > 4:
        return False
    hints.add("date", 0, iso_date(dates[0]))
    if m := re.search(
        rf"\bby\s+({page.NAME}(?:\s+(?:and|&)\s+{page.NAME})?)", text
    ):  # "Posted June 3, 2023 by Jane Doe"
        hints.add("author", 1, m.group(1))
    # "European PravdaThursday, 1 June 2023": a name glued before the date is the publisher.
    prefix = DATE_LABEL.sub(" ", WEEKDAY.sub(" ", text[: dates[0].start()])).strip(" ,|•·-–—")
    if prefix and re.fullmatch(page.NAME, prefix) and not any(c.isdigit() for c in prefix):
        hints.add("source", 2, prefix)
    return True


def _classify(text: str, hints: _Hints) -> str | None:
    """Why a line is clutter judged on its own, or None; records metadata it reveals."""
    bare = page.BULLET.sub("", text).strip()
    low = bare.lower().rstrip(":").strip()
    n = _words(bare)
    terminal = bool(page.TERMINAL.search(bare))
    tokens = bare.split()
    if page.TIMESTAMP.match(bare):
        return "timestamp"
    if m := page.URL.match(bare):
        hints.add("url", 0, m.group(1))
        return "url"
    if page.AD.match(bare):
        return "ad"
    if page.SHARE.match(bare):
        return "share"
    if page.LIST_HEADING.match(bare):
        return "list-heading"
    if low in page.NAV or (bare != text and n <= 3 and not terminal):
        return "nav"
    if 2 <= n <= 8 and not terminal and all(t.isalpha() and len(t) <= 3 and t[0].isupper() for t in tokens):
        return "nav"  # a language switcher such as "EN UA RU"
    if page.CAPTION.search(bare):
        return "caption"
    if page.CREDITS.match(bare) and (bare.startswith("(") or ";" in bare or n <= 12):
        if m := page.REPORTER.search(bare):
            hints.add("author", 1, m.group(1))
        return "byline"
    if (m := page.BYLINE.match(bare)) and n <= 14 and not terminal:
        # "By Jane Doe | May 8, 2023", "by | May 8, 2023"; not "By Friday the talks had ended"
        author = DATE.sub("", re.split(r"\s*[|•·]\s*", m.group("rest"))[0]).split(",")[0].strip()
        if not author or re.fullmatch(rf"{page.NAME}(?:\s+(?:and|&)\s+{page.NAME})?", author):
            hints.add("author", 0, author)
            hints.add("date", 1, parse_date(m.group("rest")))
            return "byline"
    if (m := page.BYLINE.match(bare)) and n <= 60 and not terminal and page.NAMES_ONLY.match(m.group("rest")):
        names = [x.strip() for x in re.split(r"\s*(?:,|\band\b|&)\s*", m.group("rest")) if x.strip()]
        if author := next((x for x in names if re.fullmatch(page.NAME, x) and len(x.split()) <= 3), None):
            hints.add("author", 0, author)
        return "byline"
    if page.VIA.match(bare) and not terminal:
        return "byline"
    if m := page.DATELINE.match(bare):
        hints.add("source", 1, m.group("agency"))
        return "dateline"
    if n <= 8 and page.DASH_DATELINE.match(bare):
        return "dateline"
    if _date_line(bare, hints):
        return "date"
    if page.OWN_PROMO_HEADING.match(bare):
        return "promo"
    if (page.PROMO.search(bare) and (n <= 40 or _weak(bare, None))) or (
        page.PROMO_WEAK.search(bare) and _weak(bare, None)
    ):
        if m := page.FROM_PUBLISHER.search(bare):
            hints.add("source", 3, m.group(1))
        if m := page.SUPPORT_PUBLISHER.search(bare):
            hints.add("source", 4, m.group(1))
        return "promo"
    if page.TEASER.match(bare):
        return "teaser"
    if _first_alnum(bare).islower() and n <= 5:
        return "fragment"
    return None


def _drop_promo_neighbours(units: list[_Unit], publisher: str | None) -> None:
    """Appeals run for several paragraphs; one talking to the reader next to an appeal is part of it."""
    changed = True
    while changed:
        changed = False
        for i, u in enumerate(units):
            if u.drop or _weak(u.text, publisher) < 2:
                continue
            if any(0 <= j < len(units) and units[j].drop == "promo" for j in (i - 1, i + 1)):
                u.drop, changed = "promo", True


def _drop_bios(units: list[_Unit], hints: _Hints) -> None:
    """'About <author>' followed by paragraphs naming that person is a bio, not the story."""
    for i, u in enumerate(units):
        m = page.BIO.match(u.text)
        if u.drop or not m:
            continue
        names = [x for x in re.split(r"\s*(?:,|\band\b|&)\s*", m.group("names") or "") if x.strip()]
        follows = [v for v in units[i + 1 :] if not v.drop][:1]
        if names and not any(name in v.text for v in follows for name in names):
            continue  # an ordinary "About NATO" subheading
        u.drop = "bio"
        if names:
            hints.add("author", 2, m.group("names"))
        for v in units[i + 1 :]:
            if v.drop:
                continue
            if names and not any(name in v.text for name in names):
                break
            v.drop = "bio"
            if a := page.AFFILIATION.search(v.text):
                hints.add("source", 5, a.group(1))
            if not names:
                break


def _drop_lists(units: list[_Unit]) -> None:
    """After a list heading, everything up to the next prose paragraph is links; after a timestamp, one headline."""
    for i, u in enumerate(units):
        if u.drop not in ("list-heading", "timestamp"):
            continue
        for v in units[i + 1 :]:
            if v.drop:
                if v.drop in ("list-heading", "timestamp"):
                    break
                continue
            if _is_body(v.text):
                break
            v.drop = "list"
            if u.drop == "timestamp":
                break


_METADATA = frozenset({"byline", "date", "url", "dateline"})


def _drop_by_position(units: list[_Unit], title: str | None) -> str | None:
    """Clutter clusters before the first and after the last prose paragraph; returns the title found."""
    body = [i for i, u in enumerate(units) if not u.drop and _is_body(u.text)]
    if not body:
        return title  # nothing looks like prose: judging by position would delete everything
    first, last = body[0], body[-1]
    if (
        title is None
        and first == 0
        and len(units) > 1
        and units[1].drop in _METADATA
        and 3 <= _words(units[0].text) <= 30
    ):
        # A scraped page's first line followed by its byline, date or url is its headline, even one shaped like
        # a sentence ("What is Diwali, and how is it celebrated?"): the story starts after the metadata.
        title, units[0].drop = units[0].text, "title"
        body = body[1:]
        if not body:
            return title
        first = body[0]
    for i, u in enumerate(units):
        if u.drop or first <= i <= last:
            continue
        if i < first and title is None and 3 <= _words(u.text) <= 30 and not _first_alnum(u.text).islower():
            title, u.drop = u.text, "title"  # the first headline before the story
        else:
            u.drop = "head" if i < first else "tail"
    # Between the first and last paragraphs a lone short line is a subheading; three or more in a
    # row (ignoring clutter already dropped between them) are a headline list.
    run: list[_Unit] = []
    for u in [*units[first : last + 1], None]:
        if u is not None and u.drop:
            continue
        if u is not None and not _is_body(u.text):
            run.append(u)
            continue
        if len(run) >= 3:
            for v in run:
                v.drop = "list"
        run = []
    return title


def clean_text(raw: str, *, known_title: str | None = None, unwrap: bool = True) -> CleanResult:
    """Drop scrape clutter from `raw`, keep the article body, and extract metadata.

    `known_title` (from HTML or Markdown) replaces title guessing; `unwrap` rejoins hard-wrapped lines.
    """
    # One typographic form for articles and questions (rag/text/normalise.py), before anything is measured.
    raw = normalise_text(raw)
    known_title = normalise_text(known_title) if known_title else known_title
    hints = _Hints()
    units = _units(raw, unwrap)
    for u in units:
        u.drop = _classify(u.text, hints)
    _drop_promo_neighbours(units, hints.best("source"))
    _drop_bios(units, hints)
    _drop_lists(units)
    title = _drop_by_position(units, known_title.strip() if known_title else None)

    seen = {_norm(title)} if title else set()
    for u in units:  # a repeated title or paragraph is a scraping artefact
        key = _norm(u.text)
        if not u.drop and key in seen and (_words(u.text) >= 4 or key == _norm(title or "")):
            u.drop = "duplicate"
        if not u.drop:
            seen.add(key)

    kept = [u for u in units if not u.drop]
    for u in kept:
        if m := page.AGENCY.match(u.text):
            hints.add("source", 0, m.group("agency"))
            break
    for u in kept:
        if m := page.WRITES.match(u.text):
            hints.add("source", 6, m.group(1) or m.group(2))
    hints.add("source", 2, known_outlet(hints.best("url")))  # after datelines and agencies, before promo guesses
    meta = ArticleMeta(
        title=title,
        source=hints.best("source"),
        date=hints.best("date"),
        url=hints.best("url"),
        author=hints.best("author"),
    )
    removed = [line for u in units if u.drop for line in u.lines]
    return CleanResult(text="\n\n".join(u.text for u in kept), removed_lines=removed, meta=meta)
