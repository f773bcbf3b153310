"""Asking about a story that three outlets carried: one answer, one source, a citation naming every outlet."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.cli.asking import print_answer
from rag.ingest.indexing import index_paths, remove_documents
from tests.fakes import ScriptedGenerator, strength_rule
from tests.syndication import OUTLETS, doc_id_of, write_stories

QUESTION = "What did the Kestrel Bay council decide about the tidal power plant on the Arden estuary?"
REPLY = (
    "The city council of Kestrel Bay voted 7 to 2 on Tuesday to build a tidal power plant at the mouth of the Arden "
    "estuary. [1]"
)
COPIES = {doc_id_of(o) for o in OUTLETS}


@pytest.fixture
def make(settings, hashing_embedder, prompts, corpus_copy, tmp_path):
    """make(**setting overrides) -> Pipeline over the NATO corpus plus the story from three outlets and a different
    story on the same topic."""
    stories = write_stories(tmp_path / "stories")

    def build(**overrides) -> Pipeline:
        s = settings.model_copy(update={"support_threshold": 0.5, **overrides})
        index, _ = index_paths(s, hashing_embedder, [corpus_copy, *stories])
        return Pipeline(s, index, hashing_embedder, ScriptedGenerator(REPLY), prompts, strength_rule())

    return build


def outlets_named(citation) -> set[str]:
    return {citation.source} | {c.source for c in citation.also_in}


def test_one_answer_whose_citation_names_all_three_outlets(make):
    answer = make().ask(QUESTION)
    assert not answer.abstained
    cited = {c.doc_id for c in answer.citations}
    assert len(cited & COPIES) == 1  # one copy speaks for the story
    first = answer.citations[0]
    assert first.doc_id in COPIES
    assert outlets_named(first) == set(OUTLETS)
    assert {c.date for c in first.also_in} | {first.date} == {"2024-02-06", "2024-02-07", "2024-02-08"}
    assert all(c.url and c.url.startswith("https://") for c in first.also_in)
    assert len({sp.passage.doc_id for sp in answer.sources} & COPIES) == 1  # no second copy among the sources


def test_the_other_story_on_the_same_topic_stays_a_source_of_its_own(make):
    results = make().search("tidal energy turbines harbour council fishing crews", top_k=10)
    docs = [r.passage.doc_id for r in results]
    assert "selwyn_tidal" in docs
    assert len(set(docs) & COPIES) == 1
    other = next(r for r in results if r.passage.doc_id == "selwyn_tidal")
    assert other.also_in == []
    assert [r.rank for r in results] == list(range(1, len(results) + 1))


def test_without_folding_the_copies_compete_as_before(make):
    results = make(fold_syndicated=False).search(QUESTION, top_k=10)
    assert len({r.passage.doc_id for r in results} & COPIES) == 3
    assert all(r.also_in == [] for r in results)


def test_the_best_scoring_copy_speaks_for_the_story(make):
    """Folding comes after fusion: the copy that ranks first is kept, whichever is the group's representative."""
    reworded_by_bay_times = (
        "Its twelve turbines, anchored to the seabed, should power around 18,000 homes once the plant opens"
    )
    unfolded = make(fold_syndicated=False).search(reworded_by_bay_times, top_k=10)
    best = next(r.passage.doc_id for r in unfolded if r.passage.doc_id in COPIES)
    assert best == doc_id_of("Bay Times")  # the only copy with that wording, though the Herald leads the group
    folded = make().search(reworded_by_bay_times, top_k=10)
    assert [r.passage.doc_id for r in folded if r.passage.doc_id in COPIES][0] == best
    assert {c.source for c in folded[0].also_in} == {"Coastal Herald", "Northern Wire"}


def test_copies_after_the_as_of_date_are_not_named(make):
    answer = make().ask(QUESTION, as_of="2024-02-07")
    first = answer.citations[0]
    assert first.date <= "2024-02-07" and all(c.date <= "2024-02-07" for c in first.also_in)
    assert outlets_named(first) == {"Coastal Herald", "Northern Wire"}


def test_after_removing_a_copy_the_citation_names_the_two_left(make, settings, hashing_embedder):
    pipeline = make()
    index, _ = remove_documents(pipeline.settings, hashing_embedder, [doc_id_of("Coastal Herald")])
    pipeline.use_index(index)
    answer = pipeline.ask(QUESTION)
    assert outlets_named(answer.citations[0]) == {"Northern Wire", "Bay Times"}


def test_cli_and_api_show_the_other_outlets(make, capsys):
    pipeline = make()
    print_answer(pipeline.ask(QUESTION))
    out = " ".join(capsys.readouterr().out.split())
    assert "also in:" in out and all(o in out for o in OUTLETS)
    with TestClient(create_app(pipeline.settings, pipeline)) as client:
        body = client.post("/v1/ask", json={"question": QUESTION}).json()
    citation = body["citations"][0]
    assert {citation["source"], *(c["source"] for c in citation["also_in"])} == set(OUTLETS)
    assert {"doc_id", "source", "date", "url"} <= set(citation["also_in"][0])
    assert body["sources"][0]["also_in"]


def test_the_eval_counts_a_folded_copy_of_the_gold_article_as_found(make):
    """The gold article may be folded under a better-scoring copy; the reader still got that story, cited."""
    from rag.evaluate.harness import judge
    from rag.evaluate.questions import EvalQuestion

    answer = make().ask(QUESTION)
    shown = answer.citations[0].doc_id
    gold = next(d for d in COPIES if d != shown)
    q = EvalQuestion(id="q", question=QUESTION, must_include=[["7 to 2"]], gold_docs=[gold])
    record = judge(q, answer, lambda claim, quote: (True, 1.0))
    assert record.gold_rank == 1 and record.verdict.gold_cited
    elsewhere = judge(q.model_copy(update={"gold_docs": ["selwyn_tidal"]}), answer, lambda claim, quote: (True, 1.0))
    assert not elsewhere.verdict.gold_cited
