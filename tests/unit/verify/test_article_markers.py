"""An article's own reference markers ("[3]") never become our citations (issue 25, item 7): quoted answers
carry only the markers of their citations."""

from __future__ import annotations

import re

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.types import AnswerSentence
from rag.ingest.indexing import index_paths
from rag.verify.citations import render_answer, without_markers
from tests.fakes import ScriptedGenerator, strength_rule

TUNNEL = (
    "Lowmere harbour tunnel approved\nPublished 2024-03-04\n\n"
    "The Lowmere harbour tunnel will cost 240 million pounds, according to the budget office [3]. Construction "
    "will begin in 2026 [2] and take four years. The council approved the plan on Thursday [1, 4].\n"
)
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def test_article_markers_are_taken_out_of_a_sentence_and_ours_added():
    assert (
        without_markers("cost 240 million, says the budget office [3].") == "cost 240 million, says the budget office."
    )
    assert (
        without_markers("It begins [2] in 2026 [1, 4]; in [2024] dollars.") == "It begins in 2026; in [2024] dollars."
    )
    sentence = AnswerSentence(text="The tunnel costs 240 million [3].", citations=[1])
    assert render_answer([sentence]) == "The tunnel costs 240 million. [1]"


@pytest.mark.parametrize("mode", ["extractive", "generate"])
def test_a_quoted_answer_carries_only_its_own_citation_markers(tmp_path, settings, hashing_embedder, prompts, mode):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "tunnel.txt").write_text(TUNNEL, encoding="utf-8")
    index, _ = index_paths(settings, hashing_embedder, [corpus])
    echo = "The Lowmere harbour tunnel will cost 240 million pounds, according to the budget office [3]. [1]"
    pipeline = Pipeline(settings, index, hashing_embedder, ScriptedGenerator(echo), prompts, strength_rule())
    answer = pipeline.ask("How much will the Lowmere harbour tunnel cost?", mode=mode)
    assert not answer.abstained and "240 million" in answer.text
    ours = {c.number for c in answer.citations}
    shown = {int(n) for m in MARKER.finditer(answer.text) for n in m.group(1).split(",")}
    assert shown == ours, answer.text
    assert all(not MARKER.search(s.text) for s in answer.sentences)
    # The citation's quote stays the article's words, markers included: it is what the span points at.
    assert any("[3]" in c.quote for c in answer.citations)
