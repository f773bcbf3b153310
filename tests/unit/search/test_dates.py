"""Date filters: a partial date names a whole period, so `until` runs to its last day (issue #17, item 1)."""

from __future__ import annotations

from datetime import date

import pytest

from rag.answer.pipeline import Pipeline, check_request
from rag.core.errors import BadInputError
from rag.ingest.indexing import index_paths
from rag.search.periods import parse_date, parse_period

DOCS_2023 = {"000_ff6882ef16d64a7d", "001_d33884d0ecc97606", "003_75066b03832c0bdd", "004_7c186e125f3c4461"}
DOCS_2023_06 = {"000_ff6882ef16d64a7d", "001_d33884d0ecc97606", "003_75066b03832c0bdd"}


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("2023", date(2023, 1, 1), date(2023, 12, 31)),
        ("2023-06", date(2023, 6, 1), date(2023, 6, 30)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),  # a leap year's February
        ("2023-02", date(2023, 2, 1), date(2023, 2, 28)),
        (" 2023-06-15 ", date(2023, 6, 15), date(2023, 6, 15)),
    ],
)
def test_a_partial_date_is_a_period(value, first, last):
    assert parse_period(value) == (first, last)
    assert parse_date(value, field="since") == first
    assert parse_date(value, field="until") == last
    assert parse_date(value, field="whatever", end=True) == last and parse_date(value, end=False) == first


@pytest.mark.parametrize("value", ["2023-13", "2023-00", "23", "2023-6", "June 2023", "2023-02-30", ""])
def test_not_a_date_is_refused_with_the_field_named(value):
    with pytest.raises(BadInputError, match="until .* is not a date"):
        parse_date(value, field="until")


def test_until_the_same_year_or_month_keeps_the_whole_period(settings, hashing_embedder, prompts, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    pipeline = Pipeline(settings, index, hashing_embedder, None, prompts)
    year = pipeline.search("NATO Ukraine", since="2023", until="2023", top_k=50)
    assert {r.passage.doc_id for r in year} == DOCS_2023
    month = pipeline.search("NATO Ukraine", since="2023-06", until="2023-06", top_k=50)
    assert {r.passage.doc_id for r in month} == DOCS_2023_06
    answer = pipeline.ask(
        "What was decided about the NATO-Ukraine Council?", mode="extractive", since="2023-06", until="2023-06"
    )
    assert {sp.passage.doc_id for sp in answer.sources} <= DOCS_2023_06 and answer.sources
    check_request(settings, "NATO?", since="2023", until="2023")  # the same period is not "since after until"
    with pytest.raises(BadInputError, match="after until"):
        check_request(settings, "NATO?", since="2023-07", until="2023-06")
