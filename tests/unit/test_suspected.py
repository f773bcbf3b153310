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
