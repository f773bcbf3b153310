"""Sentence splitting and sentence-aware chunking: exact spans, overlap, long sentences, ids."""

from __future__ import annotations

import random

import pytest

from rag.core.errors import BadInputError
from rag.core.types import Article, ArticleMeta, Passage
from rag.text.chunking import chunk_article
from rag.text.sentences import split_sentences


def _article(text: str, doc_id: str = "doc-1") -> Article:
    meta = ArticleMeta(title="T", source="S", date="2023-06-01")
    return Article(doc_id=doc_id, text=text, meta=meta, content_hash="0" * 64)


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def _sentence(n_words: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n_words - 1)).capitalize() + " end."


# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The U.S. President met Dr. Smith. He left.", ["The U.S. President met Dr. Smith.", "He left."]),
        ("Mr. and Mrs. Jones arrived. Prof. Lee spoke.", ["Mr. and Mrs. Jones arrived.", "Prof. Lee spoke."]),
        ("Ukraine applied on Sept. 30. It waited.", ["Ukraine applied on Sept. 30.", "It waited."]),
        ("It ranked No. 1 in Jan. 2023 polls. Then it fell.", ["It ranked No. 1 in Jan. 2023 polls.", "Then it fell."]),
        ("A 5.1 magnitude quake hit. Nobody was hurt.", ["A 5.1 magnitude quake hit.", "Nobody was hurt."]),
        ("J. Smith and A. B. Jones wrote it. They agree.", ["J. Smith and A. B. Jones wrote it.", "They agree."]),
        ('He said "we will win." Then he left.', ['He said "we will win."', "Then he left."]),
        ("She said “it is over.” The talks ended.", ["She said “it is over.”", "The talks ended."]),
        ("He lives in the U.S. The next day he left.", ["He lives in the U.S.", "The next day he left."]),
        ("Wait... the vote was close. Really? Yes!", ["Wait... the vote was close.", "Really?", "Yes!"]),
        ("Many reasons… President Biden spoke.", ["Many reasons…", "President Biden spoke."]),
        ("“Really?” she asked. Fine.", ["“Really?” she asked.", "Fine."]),
        ("Headline without stop\nBody sentence.", ["Headline without stop", "Body sentence."]),
        ("One.\n\nTwo", ["One.", "Two"]),
        ('"...let me say this, we are working hard."', ['"...let me say this, we are working hard."']),
        ("The U.S.-led group met. It agreed.", ["The U.S.-led group met.", "It agreed."]),
        ("", []),
        ("   \n\n  ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def test_sentence_spans_are_stripped_and_exact() -> None:
    text = "  First one.   Second one!  \n\n  Third  "
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third"]
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert spans == sorted(spans)


# ---------------------------------------------------------------- chunking


def _check_invariants(article: Article, passages: list[Passage], size: int) -> None:
    for n, p in enumerate(passages):
        assert p.passage_id == f"{article.doc_id}#{n}"
        assert p.ordinal == n and p.doc_id == article.doc_id
        assert article.text[p.start : p.end] == p.text
        assert p.text == p.text.strip() and p.text
        assert len(p.text.split()) <= size
        assert p.meta == article.meta
    starts = [p.start for p in passages]
    assert starts == sorted(set(starts)), "passages must move forward"
    # Every word of the article is in some passage.
    covered = set()
    for p in passages:
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, ch in enumerate(article.text) if not ch.isspace())


def test_packs_whole_sentences_up_to_size() -> None:
    text = " ".join(_sentence(10, f"s{i}x") for i in range(10))  # ten 10-word sentences
    article = _article(text)
    passages = chunk_article(article, chunk_size=35, chunk_overlap=0)
    _check_invariants(article, passages, 35)
    assert [len(p.text.split()) for p in passages] == [30, 30, 30, 10]
    sentence_set = set(_sentences(text))
    for p in passages:
        assert all(s in sentence_set for s in _sentences(p.text)), "a passage cut a sentence"


def test_overlap_repeats_trailing_sentences() -> None:
    text = " ".join(_sentence(10, f"s{i}x") for i in range(10))
    article = _article(text)
    passages = chunk_article(article, chunk_size=40, chunk_overlap=25)
    _check_invariants(article, passages, 40)
    for prev, nxt in zip(passages, passages[1:]):
        shared = prev.end - nxt.start
        assert shared > 0, "consecutive passages should overlap"
        overlap_text = article.text[nxt.start : prev.end]
        assert len(overlap_text.split()) <= 25
        assert prev.text.endswith(overlap_text)
        # the overlap starts on a sentence boundary
        assert nxt.start in {a for a, _ in split_sentences(article.text)}


def test_overlap_never_exceeds_budget_and_always_progresses() -> None:
    text = " ".join(_sentence(9, f"s{i}x") for i in range(12))
    article = _article(text)
    passages = chunk_article(article, chunk_size=20, chunk_overlap=19)
    _check_invariants(article, passages, 20)
    assert passages[-1].end == len(text)
    assert len(passages) < 20


def test_no_overlap_gives_disjoint_passages() -> None:
    text = "\n\n".join(_sentence(7, f"p{i}x") for i in range(9))
    article = _article(text)
    passages = chunk_article(article, chunk_size=20, chunk_overlap=0)
    _check_invariants(article, passages, 20)
    for prev, nxt in zip(passages, passages[1:]):
        assert nxt.start > prev.end


def test_long_sentence_is_split_on_word_boundaries() -> None:
    long = " ".join(f"w{i}" for i in range(55)) + "."
    text = f"Short one here. {long} Final short sentence."
    article = _article(text)
    passages = chunk_article(article, chunk_size=20, chunk_overlap=5)
    _check_invariants(article, passages, 20)
    article_tokens = set(text.split())
    for p in passages:  # pieces end on word boundaries: no token is ever cut
        assert set(p.text.split()) <= article_tokens
    long_pieces = [p for p in passages if "w0" in p.text.split() or "w54." in p.text.split()]
    assert len(long_pieces) >= 2


def test_single_short_article_is_one_passage() -> None:
    article = _article("Just one sentence here.", doc_id="abc")
    passages = chunk_article(article, chunk_size=110, chunk_overlap=25)
    assert len(passages) == 1
    assert passages[0].passage_id == "abc#0" and passages[0].text == article.text
    assert (passages[0].start, passages[0].end) == (0, len(article.text))


def test_empty_article_has_no_passages() -> None:
    assert chunk_article(_article(""), chunk_size=50, chunk_overlap=10) == []


@pytest.mark.parametrize(("size", "overlap"), [(50, 50), (50, 60), (10, -1), (0, 0)])
def test_bad_sizes_raise(size: int, overlap: int) -> None:
    with pytest.raises(BadInputError):
        chunk_article(_article("A sentence."), chunk_size=size, chunk_overlap=overlap)


def test_random_texts_keep_invariants() -> None:
    rng = random.Random(7)
    for trial in range(40):
        parts = []
        for i in range(rng.randint(1, 25)):
            sentence = _sentence(rng.randint(1, 60), f"t{trial}s{i}x")
            parts.append(sentence + rng.choice([" ", "\n", "\n\n"]))
        article = _article("".join(parts).strip())
        size = rng.randint(20, 80)
        overlap = rng.randint(0, size - 1)
        _check_invariants(article, chunk_article(article, chunk_size=size, chunk_overlap=overlap), size)
