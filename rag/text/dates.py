"""Dates as news pages write them ("June 1, 2023", "1st of June 2023", "2023-06-01", "01.06.2023")."""

from __future__ import annotations

import re
from datetime import date

_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov("
    r"?:ember)?|Dec(?:ember)?)"
)
DATE = re.compile(
    rf"\b(?P<iy>\d{{4}})[-/](?P<im>\d{{1,2}})[-/](?P<id>\d{{1,2}})(?!\d)"
    rf"|\b(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?(?P<m1>{_MONTH})\.?,?\s+(?P<y1>\d{{4}})\b"
    rf"|\b(?P<m2>{_MONTH})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y2>\d{{4}})\b"
    rf"|\b(?P<ed>\d{{1,2}})\.(?P<em>\d{{1,2}})\.(?P<ey>\d{{4}})\b",
    re.I,
)
PARTIAL_DATE = re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\b\.?|\b{_MONTH}\.?\s+\d{{1,2}}\b", re.I)
WEEKDAY = re.compile(r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs?)?|Fri|Sat(?:ur)?|Sun)(?:day)?\b\.?", re.I)
TIME = re.compile(r"\b\d{1,2}[:.]\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?(?:\s*(?:[A-Z]{2,4}T?|[+-]\d{2}:?\d{2}))?\b", re.I)
DATE_LABEL = re.compile(r"\b(?:date|published|updated|last updated|posted|modified|on|at)\b:?", re.I)


def iso_date(match: re.Match[str]) -> str | None:
    g = match.groupdict()
    try:
        if g["iy"]:
            y, m, d = int(g["iy"]), int(g["im"]), int(g["id"])
        elif g["ey"]:
            y, m, d = int(g["ey"]), int(g["em"]), int(g["ed"])
        else:
            mon = g["m1"] or g["m2"]
            y, m, d = int(g["y1"] or g["y2"]), _MONTHS[mon[:3].lower()], int(g["d1"] or g["d2"])
        return date(y, m, d).isoformat()
    except (ValueError, KeyError):
        return None


def parse_date(text: str) -> str | None:
    """The first full calendar date in `text` as ISO YYYY-MM-DD, or None."""
    for match in DATE.finditer(text or ""):
        if iso := iso_date(match):
            return iso
    return None
