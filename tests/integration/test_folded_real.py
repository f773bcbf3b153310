"""Syndicated copies with the real MiniLM embedder and the packaged answer decision: one answer, all outlets."""

from __future__ import annotations

from rag.answer.pipeline import Pipeline
from rag.core.settings import Settings
from rag.ingest.indexing import index_paths
from rag.models.prompts import PromptSet
from tests.conftest import CORPUS
from tests.syndication import OUTLETS, doc_id_of, write_stories


def test_a_story_from_three_outlets_is_answered_once_naming_all_three(real_embedder, tmp_path):
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", corpus_dir=CORPUS, rewrite_with_model=False)
    index, _ = index_paths(settings, real_embedder, [CORPUS, *write_stories(tmp_path / "stories")])
    pipeline = Pipeline(settings, index, real_embedder, None, PromptSet.load())
    answer = pipeline.ask("How many homes will the Kestrel Bay tidal power plant supply?", mode="extractive")
    assert not answer.abstained
    assert "18,000" in answer.text
    copies = {doc_id_of(o) for o in OUTLETS}
    assert len({c.doc_id for c in answer.citations} & copies) == 1
    first = answer.citations[0]
    assert {first.source} | {c.source for c in first.also_in} == set(OUTLETS)
    assert len({sp.passage.doc_id for sp in answer.sources} & copies) == 1
    assert index.manifest.documents["selwyn_tidal"].group == "selwyn_tidal"
