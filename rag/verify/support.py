"""The lexical support primitives: which terms of a question or claim a text covers, and whether a name or
abbreviation is present in it. Citation checks, the answer decision and quoting all build on these."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from rag.text.patterns import names_in, numbers_in
from rag.text.tokens import content_terms, stem, tokenize

# Words that shape a question but are not what it is about.
QUESTION_WORDS = frozenset("many much kind type name happen happened according ever exactly".split())
# Words about the articles rather than about the news ("quoted in these reports"): neither evidence of an
# answer in a question nor new information in an answer.
META_WORDS = frozenset(
    "article articles source sources discuss discusses discussed report reports reported reporting mention "
    "mentions mentioned question answer text passage states state stated describe describes described "
    "information quote quoted quotes news story stories according".split()
)
_IGNORED = frozenset(stem(w) for w in QUESTION_WORDS | META_WORDS)
# The weight of embedding similarity against term coverage, in a sentence's relevance to a question and in a
# claim's support by a source (rag/verify/citations.py); the rest is coverage.
DENSE_SHARE = 0.5


def question_terms(question: str) -> set[str]:
    return content_terms(question) - _IGNORED


def term_present(term: str, vocabulary: set[str]) -> bool:
    """Exact, or close enough to survive transliteration (Kyiv/Kiev) and inflection (Ukraine/Ukrainian)."""
    term = term.lower()
    if term in vocabulary:
        return True
    if len(term) < 4:
        return False
    return any(
        v.startswith(term[:5]) and len(term) >= 5 or difflib.SequenceMatcher(None, term, v).ratio() >= 0.75
        for v in vocabulary
        if abs(len(v) - len(term)) <= 3
    )


def word_vocabulary(text: str) -> set[str]:
    """Every word of a text, lower-cased, both whole and as the tokenizer splits it: what names are looked up in."""
    words = {w.lower().strip("’'") for w in re.findall(r"[\w’'-]+", text)}
    # The parts of hyphenated words too, stopwords included: "mid-May" mentions May (a stopword as "may").
    parts = {p for w in words if "-" in w for p in w.split("-") if p}
    return words | parts | set(tokenize(text))


# How news writes the few abbreviations it uses without spelling them out: "US" is "U.S.", "the United States"
# or "American" in another outlet's copy. Other abbreviations are matched on their initials (acronym_present).
_ABBREVIATION_FORMS = {
    "US": ("america", "american", "americans"),
    "USA": ("america", "american", "americans"),
    "UK": ("britain", "british"),
    "EU": ("european",),
}
_CONNECTIVES = frozenset({"of", "the", "and", "for", "on", "de"})


def acronym_present(acronym: str, text: str) -> bool:
    """An all-caps abbreviation of the question found in a text that writes it dotted ("U.S.", "U.N.") or spelled
    out ("United States", "World Health Organization"): the tokenizer alone misses both, and "US" is a stopword."""
    if not (2 <= len(acronym) <= 6 and acronym.isalpha() and acronym.isupper()):
        return False
    if re.search(r"\b" + r"\.\s?".join(acronym) + r"\.?", text):
        return True
    words = re.findall(r"[A-Za-z]+", text)
    if any(w.lower() in _ABBREVIATION_FORMS.get(acronym, ()) for w in words):
        return True
    for i, word in enumerate(words):
        if word[0] != acronym[0]:
            continue
        letters, j = "", i
        while j < len(words) and len(letters) < len(acronym):
            if letters and words[j] in _CONNECTIVES:
                j += 1
                continue
            if not words[j][0].isupper():
                break
            letters, j = letters + words[j][0], j + 1
        if letters == acronym:
            return True
    return False


def missing_terms(question: str, texts: list[str]) -> list[str]:
    """Numbers and names the question is about that no retrieved text mentions: the articles cannot answer it."""
    joined = " ".join(texts)
    vocab = word_vocabulary(joined)
    numbers = numbers_in(joined)
    missing = [n for n in sorted(numbers_in(question)) if n not in numbers]
    missing += [n for n in sorted(names_in(question)) if not term_present(n, vocab) and not acronym_present(n, joined)]
    return missing


IdfFn = Callable[[str], float]


def coverage(terms: set[str], text_terms: set[str], idf: IdfFn | None = None) -> float:
    """Share of the terms the text contains, each weighted by its rarity when an idf is given: missing
    "population" matters more than matching "Ukraine" in a corpus where every passage says Ukraine."""
    if not terms:
        return 0.0
    weight = idf or (lambda _t: 1.0)
    total = sum(weight(t) for t in terms)
    if total <= 0:
        return 0.0
    return sum(weight(t) for t in terms if t in text_terms) / total


# Sentences addressed to a language model rather than to a reader: prompt injection planted in an article.
# Narrow on purpose (a news sentence may well say "ignored the rules"); what it misses, verification still
# checks, but what it catches can neither steer the model nor be cited as support for the claim it asks for.
