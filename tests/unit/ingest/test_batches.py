"""Long indexing runs commit as they go (issue #15): every RAG_COMMIT_EVERY_ARTICLES articles or
RAG_COMMIT_EVERY_S seconds, so an interrupted run keeps its commits and the rerun embeds only the rest."""

from __future__ import annotations

import pytest

from rag.ingest.indexing import IndexProgress, index_paths, reindex
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from tests.fakes import HashingEmbedder
from tests.syndication import write_stories
from tests.unit.storage.test_segments import assert_same, snapshot


class Interrupted(Exception):
    pass


class CountingEmbedder(HashingEmbedder):
    """Counts the texts it embeds; raises on call number `fail_on` (1-based), as a kill mid-batch would stop it."""

    def __init__(self, fail_on: int | None = None):
        super().__init__(128)
        self.texts, self.calls, self.fail_on = 0, 0, fail_on

    def embed(self, texts, *, progress=False):
        self.calls += 1
        if self.calls == self.fail_on:
            raise Interrupted("killed")
        self.texts += len(texts)
        return super().embed(texts)


def test_a_run_commits_every_n_articles(settings, corpus_copy):
    emb = CountingEmbedder()
    index, report = index_paths(settings.model_copy(update={"commit_every_articles": 2}), emb, [corpus_copy])
    assert report.commits == 3 and index.generation == 3 and len(report.added) == 5
    assert [e.documents for e in read_manifest(settings.index_dir).segments] == [2, 2, 1]
    _, again = index_paths(settings.model_copy(update={"commit_every_articles": 2}), emb, [corpus_copy])
    assert again.commits == 0 and len(again.unchanged) == 5 and again.generation == 3


def test_a_run_commits_when_the_time_is_up(settings, corpus_copy):
    # Any time at all has passed after each article: every article is its own commit.
    _, report = index_paths(settings.model_copy(update={"commit_every_s": 1e-9}), CountingEmbedder(), [corpus_copy])
    assert report.commits == 5 and len(read_manifest(settings.index_dir).segments) == 5


def test_an_interrupted_run_keeps_its_commits_and_the_rerun_embeds_only_the_rest(settings, corpus_copy, tmp_path):
    batched = settings.model_copy(update={"commit_every_articles": 2})
    with pytest.raises(Interrupted):
        index_paths(batched, CountingEmbedder(fail_on=3), [corpus_copy])  # the third batch never commits
    committed = read_manifest(settings.index_dir)
    assert len(committed.documents) == 4 and committed.generation == 2

    emb = CountingEmbedder()
    index, report = index_paths(batched, emb, [corpus_copy])
    (rest,) = set(report.added)
    assert sorted(report.unchanged) == sorted(committed.documents) and rest not in committed.documents
    assert emb.texts == report.passages_embedded == len(index.passages_of(rest))  # only the uncommitted article

    whole, _ = index_paths(
        settings.model_copy(update={"index_dir": tmp_path / "whole"}), CountingEmbedder(), [corpus_copy]
    )
    loaded = load_index(settings, embedding_model=emb.name, dimension=emb.dimension)
    assert_same(snapshot(loaded, emb), snapshot(whole, emb))


def test_syndicated_copies_fold_the_same_across_batches(settings, hashing_embedder, corpus_copy, tmp_path):
    stories = write_stories(tmp_path / "stories")
    together, _ = index_paths(settings, hashing_embedder, [corpus_copy, *stories])
    one_each = settings.model_copy(update={"index_dir": tmp_path / "one-each", "commit_every_articles": 1})
    batched, report = index_paths(one_each, hashing_embedder, [*reversed(stories), corpus_copy])
    assert report.commits == 9
    groups = {d: r.group for d, r in batched.manifest.documents.items()}
    assert groups == {d: r.group for d, r in together.manifest.documents.items()}
    assert len(set(groups.values())) == 7  # the three outlets' copies are one group
    reloaded = load_index(one_each, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert {d: r.group for d, r in reloaded.manifest.documents.items()} == groups


def test_progress_counts_articles_passages_and_commits(settings, corpus_copy):
    (corpus_copy / "empty.txt").write_text("  \n")
    seen: list[IndexProgress] = []
    record = lambda state: seen.append(
        IndexProgress(
            **{k: getattr(state, k) for k in ("articles_total", "articles_done", "passages_embedded", "commits")}
        )
    )
    _, report = index_paths(
        settings.model_copy(update={"commit_every_articles": 2}), CountingEmbedder(), [corpus_copy], progress=record
    )
    assert {s.articles_total for s in seen} == {6}
    done = [s.articles_done for s in seen]
    assert done == sorted(done) and done[-1] == 6 and seen[-1].commits == report.commits == 3
    embedded = [s.passages_embedded for s in seen]
    assert embedded == sorted(embedded) and embedded[-1] == report.passages_embedded > 0


def test_reindex_commits_in_batches_and_removes_what_is_gone_at_the_end(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    stored = sorted((settings.index_dir / "documents").iterdir())
    stored[0].unlink()
    index, report = reindex(settings.model_copy(update={"commit_every_articles": 2}), emb, rebuild=True)
    assert report.commits == 2 and len(index.manifest.documents) == 4 and report.removed == []
    index, report = reindex(settings, emb)
    assert report.commits == 0 and len(index.manifest.documents) == 4
