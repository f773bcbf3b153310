"""From retrieved passages to the evidence a question is answered from: scored sentences, deduplicated
sources within a token budget, and how strongly the evidence answers the question at all."""

from __future__ import annotations

import difflib
import re
from datetime import date
from collections.abc import Callable

import numpy as np

from rag.embedder import Embedder
from rag.lexical import content_terms, stem, tokenize
from rag.sentences import split_sentences
from rag.settings import Settings
from rag.timeframe import TimeFrame, time_fit
from rag.types import ArticleMeta, Evidence, EvidenceSentence, ScoredPassage

# Words that shape a question but are not what it is about.
QUESTION_WORDS = frozenset("many much kind type name happen happened according ever exactly".split())
# Words about the articles rather than about the news ("quoted in these reports"): neither evidence of an
# answer in a question nor new information in an answer.
META_WORDS = frozenset("article articles source sources discuss discusses discussed report reports reported reporting mention "
                       "mentions mentioned question answer text passage states state stated describe describes described "
                       "information quote quoted quotes news story stories according".split())
_IGNORED = frozenset(stem(w) for w in QUESTION_WORDS | META_WORDS)
# The weight of embedding similarity against term coverage, in a sentence's relevance to a question and in a
# claim's support by a source (rag/citations.py); the rest is coverage.
DENSE_SHARE = 0.5
# What a sentence from an article outside the question's time keeps of its relevance at the least (`standing`).
TIME_FLOOR = 0.5
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w’'-]+)")
TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    return int(len(text.split()) * 1.35) + 1


def question_terms(question: str) -> set[str]:
    return content_terms(question) - _IGNORED


def numbers_in(text: str) -> set[str]:
    return {m.replace(",", "") for m in _NUMBER.findall(text)}


def names_in(text: str) -> set[str]:
    """Capitalised words that are not merely sentence-initial: the names a claim stands on."""
    out = set()
    for match in _NAME.finditer(text.strip()):
        word = match.group(1).strip("’'-")
        if word.lower() not in _COMMON_CAPS and len(word) > 1:
            out.add(word)
    return out


_COMMON_CAPS = frozenset("i the a an he she it they we you this that these those what who which when where why how "
                         "and but or if in on at to of for by with from as is are was were".split())


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


def meta_text(meta: ArticleMeta) -> str:
    """An article's title, source, author and date in words: a question may name them ("the May 2023 report")."""
    parts = [meta.title or "", meta.source or "", meta.author or ""]
    if meta.date:
        try:
            d = date.fromisoformat(meta.date[:10])
            parts.append(f"{d.day} {d.strftime('%B')} {d.year}")
        except ValueError:
            parts.append(meta.date)
    return " ".join(p for p in parts if p)


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
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
    r"(?:previous|prior|above|earlier|preceding|foregoing|system|original)\s+(?:instructions?|prompts?|messages?|context|rules)\b"
    r"|\b(?:ignore|disregard)\s+(?:all|any)\s+(?:instructions?|prompts?)\b"
    r"|\byou are now (?:an? |the )?(?:ai|assistant|chatbot|language model|llm)\b"
    r"|<\|[\w-]+\|>|\[/?INST\]|<</?SYS>>",
    re.I,
)


def is_instruction(text: str) -> bool:
    return bool(_INSTRUCTION.search(text))


_QUESTION_END = re.compile(r"\?[\"'”’)\]]*\s*$")


def is_question(text: str) -> bool:
    """A sentence that asks states nothing to cite; and a quiz-like headline that restates the reader's question
    scores as the best evidence there is while holding no answer."""
    return bool(_QUESTION_END.search(text))


def _sentences_of(scored: list[ScoredPassage]) -> list[EvidenceSentence]:
    """Sentences of the passages in rank order, each once (overlapping chunks repeat sentences)."""
    seen: set[tuple[str, int]] = set()
    out: list[EvidenceSentence] = []
    for sp in scored:
        p = sp.passage
        for start, end in split_sentences(p.text):
            key = (p.doc_id, p.start + start)
            if key in seen or is_instruction(p.text[start:end]) or is_question(p.text[start:end]):
                continue
            seen.add(key)
            out.append(EvidenceSentence(text=p.text[start:end], doc_id=p.doc_id, passage_id=p.passage_id, start=p.start + start, end=p.start + end))
    return out


def standing(sentence: EvidenceSentence) -> float:
    """Its relevance, discounted when its article lies outside the time the question names ("this week"): the
    order in which the decision and the extractive answer consider sentences. A closer match from six weeks
    earlier must not outrank the week's own report of the event."""
    return sentence.relevance * (TIME_FLOOR + (1 - TIME_FLOOR) * sentence.timely)


def date_sentences(sentences: list[EvidenceSentence], scored: list[ScoredPassage], frame: TimeFrame | None) -> None:
    """Set each sentence's `timely` from its article's date and the question's time (rag/timeframe.py)."""
    if frame is None or not frame.has_cue:
        return
    dates = {sp.passage.passage_id: sp.passage.meta.date for sp in scored}
    for sentence in sentences:
        sentence.timely = time_fit(dates.get(sentence.passage_id), frame)


def _near_duplicate(a: set[str], b: set[str], threshold: float) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold


def select_evidence(
    question: str,
    scored: list[ScoredPassage],
    embedder: Embedder,
    settings: Settings,
    count_tokens: TokenCounter = estimate_tokens,
    query_vector: np.ndarray | None = None,
    idf: IdfFn | None = None,
) -> Evidence:
    sentences = _sentences_of(scored)
    if not sentences:
        return Evidence(question=question, sources=[], sentences=[], strength=0.0, missing_terms=missing_terms(question, []))
    q_vec = query_vector if query_vector is not None else embedder.embed([question])[0]
    s_vecs = embedder.embed([s.text for s in sentences])
    dense = s_vecs @ q_vec
    terms = question_terms(question)
    tokens = [content_terms(s.text) for s in sentences]
    for i, sentence in enumerate(sentences):
        # A sentence's neighbours in its passage often carry the subject it leaves implicit.
        window = set(tokens[i])
        for j in (i - 1, i + 1):
            if 0 <= j < len(sentences) and sentences[j].passage_id == sentence.passage_id:
                window |= tokens[j]
        sentence.dense = float(dense[i])
        sentence.coverage = coverage(terms, window, idf)
        sentence.relevance = float(DENSE_SHARE * sentence.dense + (1 - DENSE_SHARE) * sentence.coverage)

    # Drop near-duplicate sentences (syndicated copies of one wire story) keeping the first, best-ranked one.
    kept: list[int] = []
    for i in range(len(sentences)):
        if not any(_near_duplicate(tokens[i], tokens[j], settings.near_duplicate_threshold) for j in kept):
            kept.append(i)
    sentences = [sentences[i] for i in kept]

    # Fill the prompt budget: passages in rank order, each trimmed to its sentences worth the room.
    budget = settings.context_token_budget
    chosen: set[tuple[str, int]] = set()
    by_passage: dict[str, list[EvidenceSentence]] = {}
    for s in sentences:
        by_passage.setdefault(s.passage_id, []).append(s)
    ranked = sorted(sentences, key=lambda s: -s.relevance)
    used = 0
    for s in ranked:
        cost = count_tokens(s.text) + 2
        if used + cost > budget:
            continue
        chosen.add((s.passage_id, s.start))
        used += cost
    sources = [sp for sp in scored if any((sp.passage.passage_id, s.start) in chosen for s in by_passage.get(sp.passage.passage_id, []))]
    selected = [s for s in sentences if (s.passage_id, s.start) in chosen]
    strength = max((s.relevance for s in sentences), default=0.0)
    return Evidence(
        question=question,
        sources=sources,
        sentences=selected,
        prompt_tokens_estimate=used,
        strength=strength,
        missing_terms=missing_terms(question, [sp.passage.text + " " + meta_text(sp.passage.meta) for sp in scored]),
    )
