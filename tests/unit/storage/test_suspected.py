"""Issue 25, item 11: defects suspected by reading, each confirmed (and fixed) or refuted by a test here."""

from __future__ import annotations

import bm25s

from rag.storage.bm25 import LexicalIndex


def test_a_search_during_the_first_bm25_build_sees_the_model_and_its_vocabulary_together(monkeypatch):
    """Confirmed: _build set the model before its vocabulary, so a search in between found no query term and
    returned nothing. The search here runs inside that window (from the model's vocabulary read)."""
    lexical = LexicalIndex()
    lexical.apply(
        add=[("a#0", "The harbour tunnel will cost 240 million pounds."), ("b#0", "Ferry fares rise.")],
        remove_ids=set(),
    )
    seen: list[list[tuple[str, float]]] = []

    class Racing(bm25s.BM25):
        def index(self, *args, **kwargs):
            super().index(*args, **kwargs)
            self.indexed = True

        @property
        def vocab_dict(self):
            # Once, after indexing: where _build reads the vocabulary. The nested search builds its own model.
            if getattr(self, "indexed", False) and not seen:
                seen.append([])
                seen[0] = lexical.search("harbour tunnel", 2)
            return self._vocab_dict

        @vocab_dict.setter
        def vocab_dict(self, value):
            self._vocab_dict = value

    monkeypatch.setattr(bm25s, "BM25", Racing)
    assert [pid for pid, _ in lexical.search("harbour tunnel", 2)] == ["a#0"]
    assert [pid for pid, _ in seen[0]] == ["a#0"], "a search during the build found nothing"


def _generation(root, number: int) -> None:
    folder = root / f"gen-{number:06d}"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"segments": []}')


def test_generations_after_gen_999999_are_ordered_by_number(tmp_path):
    """Confirmed: generation folders were ordered as strings, and gen-1000000 sorts before gen-999999, so pruning
    and the sweep of never-live generations deleted the generation before the live one and kept an older one."""
    from rag.storage.segments import _prune, sweep_leftovers

    for number in (999_998, 999_999, 1_000_000):
        _generation(tmp_path, number)
    (tmp_path / "CURRENT").write_text("gen-1000000")
    sweep_leftovers(tmp_path)  # nothing is newer than the live generation: nothing to sweep
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-1000000", "gen-999998", "gen-999999"]
    _generation(tmp_path, 1_000_001)
    (tmp_path / "CURRENT").write_text("gen-1000001")
    _prune(tmp_path)  # keeps the live generation and the one before it
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-1000000", "gen-1000001"]


def test_zero_width_joiners_and_soft_hyphens_are_removed_from_questions_and_articles_alike(settings):
    """Refuted: check_question strips every format character, ZWNJ and soft hyphen included, but the article
    cleaner removes the same characters (rag/text/cleaning.py), so "می‌خواهد" typed with or without its ZWNJ
    tokenises the same in a question and in an article, and "co\u00adoperation" matches "cooperation"."""
    from rag.answer.requests import check_question
    from rag.ingest.corpus import article_from_bytes
    from rag.text.tokens import content_terms

    joined, plain = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u062f", "\u0645\u06cc\u062e\u0648\u0627\u0647\u062f"
    body = (
        "\u062e\u0628\u0631\n\n\u0627\u0648 {} \u0628\u0631\u0648\u062f \u0648 \u0628\u0627\u0632 \u0622\u0645\u062f.\n"
    )
    for typed in (joined, plain):
        question = check_question(settings, f"\u0686\u0647 \u06a9\u0633\u06cc {typed}\u061f")
        for stored in (joined, plain):
            article = article_from_bytes("fa", "fa.txt", body.format(stored).encode())
            assert content_terms(plain) <= content_terms(question) and content_terms(plain) <= content_terms(
                article.text
            )
    assert "cooperation" in check_question(settings, "What did the co\u00adoperation council decide?")
    article = article_from_bytes("en", "en.txt", "Council\n\nThe co\u00adoperation council met on Monday.\n".encode())
    assert "cooperation" in article.text


def test_an_over_long_history_turn_is_refused_like_an_over_long_question(
    settings, hashing_embedder, prompts, corpus_copy
):
    """Confirmed: history was capped by turns only, so one 500,000-character turn went whole into the follow-up
    rewrite (and the model's prompt). Each turn is now capped by RAG_MAX_HISTORY_CHARS: 413, one CLI line."""
    import pytest
    from fastapi.testclient import TestClient

    from api.app import create_app
    from rag.answer.pipeline import Pipeline
    from rag.core.errors import TooLargeError
    from rag.core.types import ChatTurn
    from rag.ingest.indexing import index_paths
    from tests.fakes import ScriptedGenerator, strength_rule

    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    pipeline = Pipeline(settings, index, hashing_embedder, ScriptedGenerator("x"), prompts, strength_rule())
    huge = [ChatTurn(role="user", content="What about NATO? " * 30_000), ChatTurn(role="assistant", content="It met.")]
    with pytest.raises(TooLargeError, match="RAG_MAX_HISTORY_CHARS"):
        pipeline.ask("And when was that?", mode="extractive", history=huge)
    fine = [ChatTurn(role="user", content="What was decided about the NATO-Ukraine Council?")] * 20
    assert pipeline.ask("And when was that?", mode="extractive", history=fine).standalone_question
    with TestClient(create_app(settings, pipeline)) as client:
        body = {"question": "And when?", "mode": "extractive", "history": [t.model_dump() for t in huge]}
        response = client.post("/v1/ask", json=body)
    assert response.status_code == 413 and "RAG_MAX_HISTORY_CHARS" in response.json()["error"]["message"]


def test_feed_failures_of_concurrent_updates_add_up_and_seen_stays_bounded():
    """Confirmed both: an update copied its own snapshot of the failure counts over the record, so two updates
    polling at once counted one attempt (an item was retried past RAG_FEED_MAX_ATTEMPTS); and `seen` kept every
    item a feed ever listed. Counts now add onto the record under the lock, and `seen` keeps the items the feed
    lists plus the last SEEN_KEPT others."""
    from rag.ingest.feeds import SEEN_KEPT, FeedRecord, _apply, _Change

    record = FeedRecord(url="http://feed", added_at="t", failures={"x": 1})
    listed = ["x", "y"]
    first, second = (_Change(title="F", listed=listed, seen=["y"], failed=["x"]) for _ in range(2))
    _apply(record, first, max_attempts=5)
    _apply(record, second, max_attempts=5)  # polled the same snapshot ({"x": 1}) concurrently
    assert record.failures == {"x": 3} and record.seen == ["y"]
    _apply(record, _Change(title="F", listed=listed, failed=["x"]), max_attempts=4)
    assert record.failures == {} and "x" in record.seen  # given up at the fourth attempt

    record.seen = [f"old-{n}" for n in range(5000)]
    _apply(record, _Change(title="F", listed=["a", "b"], seen=["a", "b"]), max_attempts=3)
    assert len(record.seen) == SEEN_KEPT + 2 and record.seen[-2:] == ["a", "b"] and "old-4999" in record.seen


def test_closing_the_batched_generator_never_frees_the_context_under_a_running_decode():
    """Confirmed: close() freed the llama.cpp context after join(timeout=30) even when the decoding thread was
    still inside a decode (a use-after-free in C). Now the thread frees it as it leaves, once its decode ends."""
    import threading

    from rag.models.llama_batching import BatchedLlama

    freed: list[str] = []

    class FakeLlamaCpp:
        @staticmethod
        def llama_batch_free(batch) -> None:
            freed.append("batch")

        @staticmethod
        def llama_free(ctx) -> None:
            freed.append("ctx")

    decoding, finish = threading.Event(), threading.Event()
    llama = object.__new__(BatchedLlama)  # no model: only the close protocol is under test
    llama._L, llama._batch, llama._ctx = FakeLlamaCpp, object(), object()
    llama._wake, llama._closed, llama._running, llama._waiting = threading.Condition(), False, [], []
    llama._stopped = llama._free_when_stopped = llama._freed = False

    def long_decode() -> None:  # stands in for _loop stuck in one llama_decode
        decoding.set()
        finish.wait(10)

    llama._loop = long_decode
    llama._thread = threading.Thread(target=llama._run, daemon=True)
    llama._thread.start()
    assert decoding.wait(5)
    llama.close(timeout_s=0.1)
    assert freed == [], "the context was freed while a decode still ran on it"
    finish.set()
    llama._thread.join(5)
    assert freed == ["batch", "ctx"]
    llama.close(timeout_s=0.1)  # a second close frees nothing twice
    assert freed == ["batch", "ctx"]


def test_a_decision_model_save_torn_by_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    """Confirmed: `rag calibrate` wrote decision.json in place (Path.write_text), so a save cut short left a
    torn file that every command then failed to load. It is now written atomically; and the model records the
    index generation and corpus fingerprint it was fitted on (rag.evaluate.calibrate.corpus_version)."""
    import builtins
    import errno
    import io

    import pytest

    from rag.answer.decision import DecisionModel, load_model
    from rag.evaluate.calibrate import corpus_version
    from rag.storage.manifest import DocumentRecord, Manifest

    path = tmp_path / "decision.json"
    model = load_model()  # the packaged one
    model.save(path)
    before = path.read_bytes()
    real_open = builtins.open

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def full_disk_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return HalfWriter(fh) if "w" in mode else fh

    changed = DecisionModel.from_json({**model.to_json(), "threshold": 0.77})
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", full_disk_open)
        m.setattr(io, "open", full_disk_open)
        with pytest.raises(OSError):
            changed.save(path)
    assert path.read_bytes() == before and load_model(path=path).threshold == model.threshold
    assert not list(tmp_path.glob(".*tmp*"))

    manifest = Manifest.model_construct(
        generation=7,
        documents={
            "a": DocumentRecord.model_construct(doc_id="a", content_hash="h1"),
            "b": DocumentRecord.model_construct(doc_id="b", content_hash="h2"),
        },
    )
    version = corpus_version(manifest)
    assert version["generation"] == 7 and version["documents"] == 2 and len(version["corpus"]) == 16
