"""One typographic normal form for articles and questions alike, so how a word was typed never changes how it
matches: "NATO–Ukraine" (en dash) and "NATO-Ukraine", "Ukraine’s" and "Ukraine's", "ﬁnal" and "final".

Applied to an article's text before cleaning (rag/text/cleaning.py: every span, sentence and token is taken
from the normal form) and to a question as it is checked (rag/answer/requests.py).
"""

from __future__ import annotations

import re
import unicodedata

# Hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, small and full-width hyphen-minus.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\ufe58\ufe63\uff0d"
# A dash between two word characters joins them ("NATO–Ukraine", "2022—2023"); a spaced dash ("a deal — for
# now") is sentence punctuation and stays as written.
_JOINING_DASH = re.compile(rf"(?<=\w)[{_DASHES}](?=\w)")
# Single curly quotes and apostrophes become "'" ("Ukraine’s" is "Ukraine's"). Double curly quotes stay: the
# sentence splitter reads “ and ” as opening and closing a quotation, which a straight " cannot say, and turning
# them straight moved sentence boundaries and cost the NATO evaluation one abstention; the tokenizer drops
# double quotes either way, so they never change what matches.
_QUOTES = str.maketrans(
    {
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’ (also the apostrophe of "Ukraine’s")
        "\u201a": "'",  # ‚
        "\u201b": "'",  # ‛
        "\u2212": "-",  # minus sign: always a hyphen-minus in running text ("−5 degrees")
        "\u00ad": None,  # soft hyphen: only a hint where a word may break, never part of it
    }
)


def normalise_text(text: str) -> str:
    """NFKC (ligatures, full-width and compatibility forms), joining dashes as "-", single curly quotes and
    apostrophes straight, soft hyphens gone. Zero-width joiners and non-joiners are left as they are here; the
    cleaner and check_question both remove them, so a word typed with or without them matches either way."""
    return _JOINING_DASH.sub("-", unicodedata.normalize("NFKC", text).translate(_QUOTES))
