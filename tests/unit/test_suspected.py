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
