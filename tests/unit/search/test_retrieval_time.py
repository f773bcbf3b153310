"""Retrieval and time: as-of dates, time words, leaving articles out, one article not crowding the top k."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rag.ingest.indexing import index_paths
from rag.search.retriever import Retriever
from rag.text.timeframe import resolve

STORY = "Automaker {name} recalled 2.9 million vehicles over a faulty seat belt, regulators said on {day}."


def _write(folder: Path, doc_id: str, title: str, published: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{doc_id}.txt").write_text(f"{title}\nPublished {published}\n\n{body}\n", encoding="utf-8")


@pytest.fixture
def weekly(tmp_path, settings, hashing_embedder):
    """The same kind of story in three weeks, and a long unrelated article."""
    corpus = tmp_path / "weekly"
    _write(corpus, "w1", "Automaker recall", "2022-06-01", STORY.format(name="Alpha", day="Wednesday"))
    _write(corpus, "w2", "Automaker recall", "2022-06-14", STORY.format(name="Bravo", day="Tuesday"))
    _write(corpus, "w3", "Automaker recall", "2022-06-28", STORY.format(name="Charlie", day="Tuesday"))
    index, _ = index_paths(settings, hashing_embedder, [corpus])
    return Retriever(index, hashing_embedder, settings), settings


def test_this_week_favours_the_week_before_the_as_of_date(weekly):
    retriever, _ = weekly
    question = "Which automaker recalled 2.9 million vehicles this week?"
    for as_of, expected in [(date(2022, 6, 16), "w2"), (date(2022, 6, 30), "w3"), (date(2022, 6, 3), "w1")]:
        top = retriever.search(question, top_k=3, frame=resolve(question, as_of))
        assert top[0].passage.doc_id == expected, (as_of, [sp.passage.doc_id for sp in top])


def test_articles_after_the_as_of_date_are_left_out(weekly):
    retriever, _ = weekly
    question = "Which automaker recalled vehicles?"
    found = {
        sp.passage.doc_id for sp in retriever.search(question, top_k=5, frame=resolve(question, date(2022, 6, 20)))
    }
    assert found == {"w1", "w2"}
    everything = {sp.passage.doc_id for sp in retriever.search(question, top_k=5)}
    assert everything == {"w1", "w2", "w3"}


def test_excluded_articles_are_left_out(weekly):
    retriever, _ = weekly
    found = {sp.passage.doc_id for sp in retriever.search("automaker recall", top_k=5, exclude_docs=frozenset({"w2"}))}
    assert found == {"w1", "w3"}


def test_one_long_article_does_not_crowd_out_the_others(tmp_path, settings, hashing_embedder):
    corpus = tmp_path / "long"
    long_body = "\n\n".join(
        f"Paragraph {i}: the council debated membership and security guarantees for Ukraine at length."
        for i in range(30)
    )
    _write(corpus, "long", "Council debate", "2023-06-01", long_body)
    _write(corpus, "short", "Council note", "2023-06-02", "The council debated membership for Ukraine.")
    index, _ = index_paths(settings, hashing_embedder, [corpus])
    query = "council debated membership security guarantees Ukraine"
    uncapped = Retriever(index, hashing_embedder, settings).search(query, top_k=3)
    assert {sp.passage.doc_id for sp in uncapped} == {"long"}
    capped = Retriever(index, hashing_embedder, settings.model_copy(update={"max_passages_per_article": 2})).search(
        query, top_k=3
    )
    assert [sp.passage.doc_id for sp in capped].count("long") == 2 and "short" in {sp.passage.doc_id for sp in capped}
    assert [sp.rank for sp in capped] == [1, 2, 3]
    # With no other article to take the places (a question scoped to one outlet), the cap leaves none empty.
    alone = Retriever(index, hashing_embedder, settings.model_copy(update={"max_passages_per_article": 2})).search(
        query, top_k=3, exclude_docs=frozenset({"short"})
    )
    assert [sp.passage.doc_id for sp in alone] == ["long"] * 3 and [sp.rank for sp in alone] == [1, 2, 3]
    assert [sp.passage.passage_id for sp in alone] == [sp.passage.passage_id for sp in uncapped]


@pytest.fixture
def crowded(tmp_path, settings, hashing_embedder):
    """Twelve older articles that repeat the question's words, and one of this week that paraphrases it."""
    corpus = tmp_path / "crowded"
    for i in range(12):
        _write(
            corpus,
            f"old{i:02d}",
            "Pandemic victory",
            f"2022-0{1 + i % 5}-1{i % 9}",
            f"Officials in region {i} declared victory over the Covid-19 pandemic again, the country said. Covid-19 "
            "pandemic victory declared.",
        )
    _write(
        corpus,
        "fresh",
        "Kim lifts measures",
        "2022-08-10",
        "North Korean leader Kim Jong Un declared the battle against the novel coronavirus won and lifted maximum "
        "measures.",
    )
    index, _ = index_paths(settings, hashing_embedder, [corpus])
    return index, settings.model_copy(update={"candidates": 5})


@pytest.mark.parametrize(
    "question",
    [
        "Which country declared victory against the Covid-19 pandemic this week?",
        "Which country recently declared victory against the Covid-19 pandemic?",
    ],
)
def test_a_time_worded_question_searches_its_own_days(crowded, hashing_embedder, question):
    index, settings = crowded
    frame = resolve(question, date(2022, 8, 12))
    windowed = Retriever(index, hashing_embedder, settings).search(question, top_k=5, frame=frame)
    assert windowed[0].passage.doc_id == "fresh", [sp.passage.doc_id for sp in windowed]
    # Without the windowed search the paraphrase is not among the archive-wide candidates at all.
    archive_only = Retriever(index, hashing_embedder, settings.model_copy(update={"window_weight": 0.0})).search(
        question, top_k=5, frame=frame
    )
    assert "fresh" not in {sp.passage.doc_id for sp in archive_only}


def test_recently_reaches_back_only_recent_days(crowded, hashing_embedder):
    index, settings = crowded
    question = "Which country recently declared victory against the Covid-19 pandemic?"
    frame = resolve(question, date(2022, 9, 30))  # the fresh article is 51 days old: outside 31, inside 62
    ids = lambda s: [
        sp.passage.doc_id for sp in Retriever(index, hashing_embedder, s).search(question, top_k=5, frame=frame)
    ]
    assert "fresh" not in ids(settings)
    assert ids(settings.model_copy(update={"recent_days": 62}))[0] == "fresh"


def test_bm25_reads_the_headline_or_else_the_url_slug(tmp_path, settings, hashing_embedder):
    corpus = tmp_path / "heads"
    _write(
        corpus,
        "titled",
        "Zephyrcorp recalls kettles",
        "2022-06-15",
        "The company said the handles can loosen over time. Owners should stop using them.",
    )
    (corpus / "slugged.txt").write_text(
        "By Jane Doe\nPublished "
        "2022-06-15\nhttps://www.example.com/2022/06/15/business/quillmobile-recall/index.html\n\n"
        "1. How relevant is this ad to you?\n\nVideo player was slow to load content. Video content never loaded.\n",
        encoding="utf-8",
    )
    index, _ = index_paths(settings, hashing_embedder, [corpus])
    assert [pid for pid, _ in index.lexical.search("zephyrcorp", 5)] == ["titled#0"]
    assert [pid for pid, _ in index.lexical.search("quillmobile", 5)] == ["slugged#0"]
