"""Date periods as the CLI and API take them (YYYY, YYYY-MM, YYYY-MM-DD) and the year a question names."""

from __future__ import annotations

import calendar
import re
from datetime import date

from rag.core.errors import BadInputError

_YEAR = re.compile(r"\b(?:in|during|since|of|from)\s+((?:19|20)\d\d)\b", re.I)


def parse_period(value: str, *, field: str = "date") -> tuple[date, date]:
    """(first day, last day) of YYYY, YYYY-MM or YYYY-MM-DD; anything else is the caller's mistake, reported clearly."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            year = int(text)
            return date(year, 1, 1), date(year, 12, 31)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            year, month = int(text[:4]), int(text[5:])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        day = date.fromisoformat(text)
        return day, day
    except ValueError:
        pass
    raise BadInputError(f"{field} {value!r} is not a date: use YYYY-MM-DD, YYYY-MM or YYYY")


def parse_date(value: str | date | None, *, field: str = "date", end: bool | None = None) -> date | None:
    """One bound of a date filter. A partial date names a period: `since` starts on its first day and `until`
    runs to its last (`--until 2023` keeps December). `end` picks the last day; by default it follows
    `field`, so every caller that names its field "until" gets an inclusive period without saying so."""
    if value is None or isinstance(value, date):
        return value
    first, last = parse_period(value, field=field)
    return last if (field == "until" if end is None else end) else first


def year_named(question: str) -> int | None:
    """A year the question is about ("in 2024"), which favours articles of that year."""
    year = _YEAR.search(question)
    return int(year.group(1)) if year else None
