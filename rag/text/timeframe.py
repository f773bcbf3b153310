"""When a question is asked from, and what its time words mean then.

A news question is asked at a moment: "Which automaker recalled cars this week?" means the week before the
question's as-of date, and an archive answering "as of 2022-06-16" cannot use articles published after it.
The as-of date defaults to today; question files carry it as `question_date` or `as_of`.

One rule for dates (README "Dates and time zones"): every date is a UTC calendar date. Feed items are converted
to their UTC date when indexed (rag/ingest/feeds.py), so "today" is the UTC date too, never the server's local
date: in a zone behind UTC the local date is still yesterday while a feed item is already dated today, and the
newest articles fell after the as-of date and out of every answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from rag.core.errors import BadInputError
from rag.text.answer_types import MONTHS

# (pattern, days back from the as-of date the phrase covers); the first match wins.
_WINDOWS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"\b(?:today|tonight|yesterday|this morning|last night)\b", re.I), 2),
    (
        re.compile(
            r"\b(?:this|past) week(?:end)?\b|\bthis past week\b|\bdays? ago\b|\bon "
            r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
            re.I,
        ),
        7,
    ),
    (re.compile(r"\blast week\b", re.I), 14),
    (re.compile(r"\b(?:this|past) month\b", re.I), 31),
    (re.compile(r"\blast month\b", re.I), 62),
]
_RECENT = re.compile(
    r"\b(?:latest|most recent|newest|recently|recent|new|newly|now|currently|current|just|upcoming|soon|this "
    r"(?:year|season|summer|spring|fall|autumn|winter))\b",
    re.I,
)


# "in July 2024", "the 2025 summit", "in March of 2024": a period the question names outright.
# The word before it must make it the event's own time: "postponed until 2031", "since 2014" or "by 2030" do not.
_NAMED_PERIOD = re.compile(
    r"\b(?:in|during|throughout|at|on|of|the|its|their|a|an|this|that)\s+(?:(?P<month>"
    + "|".join(MONTHS)
    + r")\s+(?:of\s+)?)?(?P<year>(?:19|20)\d\d)\b",
    re.I,
)
# Words that put the question's event ahead of its articles ("what will NATO decide in July 2024?"): answerable
# from articles written before it, so the period check below stays out of the way.
_FORWARD = re.compile(
    r"\b(?:will|would|shall|going to|expected|expects?|plans?|planned|planning|upcoming|scheduled|set "
    r"to|hopes?|aims?|wants?)\b",
    re.I,
)


def utc_today() -> date:
    """Today's date in UTC: the as-of date when none is given."""
    return datetime.now(UTC).date()


def days_before(day: date, days: int) -> date:
    """`day` minus `days`, or the first day there is: an as-of date near year 1 must not crash date arithmetic."""
    return day - timedelta(days=min(days, (day - date.min).days))


# "in March 2024", "between March 2024 and May 2024", "in March and May of 2024", "during 2024": periods a question
# sets its time frame with, for matching against the dates of the articles (period_words). Only after a word that
# makes the period the time frame: "its June 2023 meeting" or "the 2025 summit" name one event, which an article
# dated that month may not report, so its text must name it.
_MONTH = "|".join(MONTHS)
_FRAME = r"\b(?:in|during|throughout|between|from|through|over|and|to)\s+"
_PERIOD = re.compile(
    rf"{_FRAME}(?P<months>(?:{_MONTH})(?:\s*(?:,|and|or|to|-)\s*(?:{_MONTH}))*)\s+(?:of\s+)?(?P<year>(?:19|20)\d\d)\b"
    rf"|{_FRAME}(?P<bare>(?:19|20)\d\d)\b",
    re.I,
)
# "now" / "currently" as the other side of a comparison ("compared with now", "than currently") names no time to
# search: the question is about the past it compares, not a request for the latest articles.
_COMPARED_NOW = re.compile(
    r"\b(?:compared?\s+(?:with|to)|than|versus|vs\.?|from|until|till|up\s+to|before)\s+(?:now|currently|today)\b"
    r"|\b(?:now|today)\s+compared\b",
    re.I,
)


def named_periods(question: str) -> list[tuple[int, int | None]]:
    """(year, month or None) for every period the question names outright."""
    periods: list[tuple[int, int | None]] = []
    for m in _PERIOD.finditer(question):
        if m.group("bare"):
            periods.append((int(m.group("bare")), None))
            continue
        year = int(m.group("year"))
        months = re.findall(_MONTH, m.group("months"), re.I)
        periods += [(year, MONTHS.index(month.lower()) + 1) for month in months]
    return list(dict.fromkeys(periods))


def period_words(question: str, dates: list[str | None]) -> str:
    """The words of the question's named periods that an article of one of `dates` is dated in ("March 2024" for
    an article of 2024-03-14): an article's date is the time of what it reports, so a question "in March 2024"
    is answered by its "on Thursday" as if the text spelled the month."""
    days = [d for d in map(as_date, dates) if d is not None]
    words = []
    for year, month in named_periods(question):
        if any(d.year == year and (month is None or d.month == month) for d in days):
            words.append(f"{MONTHS[month - 1]} {year}" if month else str(year))
    return " ".join(words)


@dataclass(frozen=True)
class TimeFrame:
    """What a question's time words resolve to against its as-of date."""

    as_of: date
    window: tuple[date, date] | None = None  # "this week": the days it covers
    wants_recent: bool = False  # "latest", "recently": newer is better, without a hard window

    @property
    def has_cue(self) -> bool:
        return self.window is not None or self.wants_recent


def parse_as_of(value: str | date | None, *, today: date | None = None) -> tuple[date, bool]:
    """(the as-of date, whether the caller gave one). A value that is not a date is the caller's mistake."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return today or utc_today(), False
    if isinstance(value, datetime):
        return value.date(), True
    if isinstance(value, date):
        return value, True
    text = value.strip()
    try:
        return (date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()), True
    except ValueError:
        raise BadInputError(f"as_of {value!r} is not a date: use YYYY-MM-DD") from None


def resolve(question: str, as_of: date) -> TimeFrame:
    question = _COMPARED_NOW.sub(" ", question)
    for pattern, days in _WINDOWS:
        if pattern.search(question):
            return TimeFrame(as_of=as_of, window=(days_before(as_of, days), as_of), wants_recent=True)
    return TimeFrame(as_of=as_of, wants_recent=bool(_RECENT.search(question)))


def asked_period_start(question: str) -> date | None:
    """The first day of the earliest period a past-tense question names ("in July 2024" -> 2024-07-01); None when
    it names none or looks ahead. If every article retrieved was published before that day, none can report it."""
    if _FORWARD.search(question):
        return None
    starts = [
        date(int(m.group("year")), MONTHS.index(m.group("month").lower()) + 1 if m.group("month") else 1, 1)
        for m in _NAMED_PERIOD.finditer(question)
    ]
    return min(starts, default=None)


def as_date(iso: str | None) -> date | None:
    """An article's date (ISO, possibly with a time after it) as a date; None when missing or unreadable."""
    if not iso:
        return None
    try:
        return date.fromisoformat(iso[:10])
    except ValueError:
        return None


def age_days(article_date: str | None, as_of: date) -> int | None:
    """Days from the article's date to the as-of date (negative: published after it); None when undated."""
    day = as_date(article_date)
    return None if day is None else (as_of - day).days


def time_fit(article_date: str | None, frame: TimeFrame | None) -> float:
    """1 for an article inside the time the question names (or any article when it names none, or an undated
    one), else the share of its age the asked span covers: a week-old question about "this week" gives an article
    six weeks old 1/6. An article published after the as-of date cannot be what the question meant: 0."""
    if frame is None or not frame.has_cue:
        return 1.0
    age = age_days(article_date, frame.as_of)
    if age is None:
        return 1.0
    if age < 0:
        # After an as-of date in the past: not what the question meant. After today: a clock or zone difference
        # (or a misdated page), the newest there is, never a reason to refuse.
        return 1.0 if frame.as_of >= utc_today() else 0.0
    span = (frame.as_of - frame.window[0]).days if frame.window else 31
    return 1.0 if age <= span else span / age
