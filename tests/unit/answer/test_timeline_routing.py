"""A timeline is asked for by its words, not by "between" (issue 25, item 8), and an answer always says when the
model was not used."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.answer.quoting import is_timeline
from rag.ingest.indexing import index_paths
from tests.fakes import ScriptedGenerator, strength_rule

PREVIEW = (
    "Euro 2024 final preview\nPublished 2024-07-13\n\n"
    "Spain and England meet in the Euro 2024 final in Berlin on Sunday. Spain have won every match of the "
    "tournament, while England reached the final after a late winner against the Netherlands.\n"
)
RESULT = (
    "Spain win Euro 2024\nPublished 2024-07-15\n\n"
    "Spain won the Euro 2024 final, beating England 2-1 in Berlin on Sunday. Mikel Oyarzabal scored the winner "
    "four minutes from the end of the final.\n"
)


@pytest.mark.parametrize(
    "question",
    [
        "Who won the Euro 2024 final between Spain and England?",
        "What is the difference between the two plans and the budget?",
        "Was there a match between Spain and England?",
    ],
)
def test_between_two_names_is_not_a_timeline(question):
    assert not is_timeline(question)


@pytest.mark.parametrize(
    "question",
    [
        "How did the NATO-Ukraine relationship develop between May and July?",
        "Give me a timeline of the harbour tunnel plans.",
        "How has the tunnel project changed?",
        "What is the chronology of the strike?",
    ],
)
def test_a_timeline_is_asked_for_by_its_words(question):
    assert is_timeline(question)


@pytest.fixture
def euro(tmp_path, settings, hashing_embedder, prompts):
    corpus = tmp_path / "euro"
    corpus.mkdir()
    (corpus / "preview.txt").write_text(PREVIEW, encoding="utf-8")
    (corpus / "result.txt").write_text(RESULT, encoding="utf-8")
    index, _ = index_paths(settings, hashing_embedder, [corpus])

    def make(*replies: str) -> tuple[Pipeline, ScriptedGenerator]:
        gen = ScriptedGenerator(*replies)
        return Pipeline(settings, index, hashing_embedder, gen, prompts, strength_rule()), gen

    return make


def test_who_won_between_two_teams_is_answered_from_the_result_not_as_a_timeline(euro):
    pipeline, gen = euro("Spain won the Euro 2024 final, beating England 2-1 in Berlin on Sunday. [1]")
    answer = pipeline.ask("Who won the Euro 2024 final between Spain and England?")
    assert not answer.abstained, answer.abstain_reason
    assert answer.quoted_because != "timeline"
    assert answer.citations[0].doc_id == "result" and "2-1" in answer.text.split("[")[0]
    # Whatever route it took, the answer says who wrote it: the model only if the model was asked.
    assert (answer.written_by == "model") == bool(gen.calls)
    assert answer.written_by == "model" or answer.quoted_because is not None
