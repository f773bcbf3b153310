"""Time words in the answer decision (issue 25, item 5), with the shipped decision model: (a) "in <month> <year>"
is answered by an article dated that month; (b) "now" in a comparison is not a request for the latest articles;
(c) a question spanning two named periods is answered when an article is dated in each."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from rag.text.timeframe import named_periods, period_words, resolve
from tests.fakes import ScriptedGenerator

APPROVAL = (
    "Lowmere council approves harbour tunnel\nPublished 2024-03-14\n\n"
    "The Lowmere harbour council approved the harbour tunnel plan on Thursday after a long debate. The tunnel will "
    "cost 240 million pounds and take four years to build, the budget office said.\n"
)
CONTRACT = (
    "Harbour tunnel contract signed\nPublished 2024-05-20\n\n"
    "The builder Marlow Works signed the contract for the Lowmere harbour tunnel on Monday. Digging under the "
    "harbour starts in the autumn, and the ferry will keep running until the tunnel opens.\n"
)
WRONG_TIME = "the closest articles are not from the time the question asks about"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    from rag.core.settings import Settings
    from rag.models.prompts import PromptSet
    from tests.fakes import HashingEmbedder

    root: Path = tmp_path_factory.mktemp("tunnel")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "approval.txt").write_text(APPROVAL, encoding="utf-8")
    (corpus / "contract.txt").write_text(CONTRACT, encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=root / "index", rewrite_with_model=False)
    embedder = HashingEmbedder(256)
    index, _ = index_paths(settings, embedder, [corpus])
    return Pipeline(settings, index, embedder, ScriptedGenerator("x"), PromptSet.load())  # the shipped decision


def test_named_periods_and_the_words_an_articles_date_stands_for():
    assert named_periods("How did it change between March 2024 and May 2024?") == [(2024, 3), (2024, 5)]
    assert named_periods("What happened in March and May of 2024, and in 2023?") == [(2024, 3), (2024, 5), (2023, None)]
    # A period naming one event ("its June 2023 meeting") is not a time frame: the text must name that event.
    assert named_periods("How many shells did the group pledge at its June 2023 meeting?") == []
    assert period_words("What did the council approve in March 2024?", ["2024-03-14"]) == "march 2024"
    assert period_words("What did the council approve in March 2024?", ["2023-03-14", "2024-04-01", None]) == ""


@pytest.mark.parametrize(
    "question",
    ["What would change for ferry passengers compared with now?", "Is the tunnel cheaper than currently planned?"],
)
def test_now_in_a_comparison_is_not_a_recency_request(question):
    assert not resolve(question, date(2026, 1, 1)).has_cue
    assert resolve("What is the council doing now?", date(2026, 1, 1)).wants_recent


def test_a_month_and_year_of_the_articles_own_date_counts_as_mentioned(pipeline):
    dated = pipeline.ask("What did the Lowmere council approve in March 2024?", mode="extractive")
    plain = pipeline.ask("What did the Lowmere council approve?", mode="extractive")
    assert not dated.abstained, dated.abstain_reason
    assert dated.citations[0].doc_id == "approval" and abs(dated.confidence - plain.confidence) < 0.1


def test_a_question_spanning_two_named_periods_is_answered_from_articles_dated_in_them(pipeline):
    answer = pipeline.ask(
        "What happened with the Lowmere harbour tunnel between March 2024 and May 2024?", mode="extractive"
    )
    assert not answer.abstained, answer.abstain_reason
    assert {c.doc_id for c in answer.citations} & {"approval", "contract"}


def test_a_comparison_with_now_is_never_refused_for_its_time(pipeline):
    answer = pipeline.ask("What would change for Lowmere ferry passengers compared with now?", mode="extractive")
    assert WRONG_TIME not in (answer.abstain_reason or "")
