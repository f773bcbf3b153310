"""BM25 over passages with bm25s. Tokens are stored per passage, so an update re-tokenises only new text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rag.text.tokens import stem, tokenize


class LexicalIndex:
    """A bm25s index rebuilt from cached token lists; rows follow `ids`."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.tokens: list[list[str]] = []
        # The bm25s model and its vocabulary, published together in one assignment: a search running while another
        # thread builds them must see both or neither (a model without its vocabulary finds no query term).
        self._built: tuple[Any, set[str]] | None = None
        self._df: dict[str, int] | None = None

    @property
    def _bm25(self) -> Any:
        return self._built[0] if self._built is not None else None

    @_bm25.setter
    def _bm25(self, model: Any) -> None:
        self._built = None if model is None else (model, set(model.vocab_dict))

    def __len__(self) -> int:
        return len(self.ids)

    def apply(self, *, add: list[tuple[str, str]], remove_ids: set[str]) -> None:
        """add: (passage_id, text) pairs. Removal first; re-adding an id replaces it."""
        drop = set(remove_ids) | {pid for pid, _ in add}
        if drop:
            keep = [i for i, pid in enumerate(self.ids) if pid not in drop]
            self.ids = [self.ids[i] for i in keep]
            self.tokens = [self.tokens[i] for i in keep]
        for pid, text in add:
            self.ids.append(pid)
            self.tokens.append(tokenize(text))
        self._built = None
        self._df = None

    def idf(self, term: str) -> float:
        """BM25-style inverse document frequency of a stemmed term over passages; a term no passage holds gets the
        maximum.
        """
        if self._df is None:
            df: dict[str, int] = {}
            for toks in self.tokens:
                for t in {stem(t) for t in toks}:
                    df[t] = df.get(t, 0) + 1
            self._df = df
        n = len(self.tokens)
        d = self._df.get(term, 0)
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))

    def _build(self):
        import bm25s

        model = bm25s.BM25()
        # bm25s rejects an all-empty corpus; a placeholder token keeps empty passages addressable.
        model.index([t or ["\x00"] for t in self.tokens], show_progress=False)
        vocab = set(model.vocab_dict) if hasattr(model, "vocab_dict") else {t for toks in self.tokens for t in toks}
        self._built = (model, vocab)
        return self._built

    def search(self, query: str, k: int, allow: set[str] | None = None) -> list[tuple[str, float]]:
        if not self.ids or k <= 0:
            return []
        model, vocab = self._built or self._build()  # read once: apply() or a build may replace it meanwhile
        q = [t for t in tokenize(query) if t in vocab]
        if not q:
            return []
        mask = None
        if allow is not None:
            mask = np.array([1.0 if pid in allow else 0.0 for pid in self.ids], dtype=np.float32)
            if not mask.any():
                return []
        scores = model.get_scores(q, weight_mask=mask)
        # Top-k among the passages holding a query term, not over every score as bm25s.retrieve does: numpy's
        # argpartition crawls on an array that is mostly zeros (83 ms vs 2 ms at 100k passages, bench/search.py).
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.lexsort((hits, -scores[hits]))]  # best first; ties in index order, so results are stable
        return [(self.ids[int(d)], float(scores[d])) for d in hits]

    @classmethod
    def from_rows(cls, ids: list[str], tokens: list[list[str]], model_dir: Path | None = None) -> LexicalIndex:
        """Rows gathered from segments (rag/storage/segments.py); `model_dir` holds a bm25s model built on exactly these
        rows, when one was saved, so the first search does not rebuild it."""
        index = cls()
        index.ids, index.tokens = ids, tokens
        if model_dir is not None and ids:
            import bm25s

            index._bm25 = bm25s.BM25.load(str(model_dir))
        return index

    def tokens_of(self, ids: list[str]) -> list[list[str]]:
        row = {pid: i for i, pid in enumerate(self.ids)}
        return [self.tokens[row[pid]] for pid in ids]

    def warm(self) -> None:
        """Build the bm25s model now rather than at the first search (a server swaps in a freshly written index)."""
        if self._built is None and self.ids:
            self._build()

    def save_model(self, directory: Path) -> None:
        """Only the bm25s model, whose statistics cover every row: worth keeping when these rows are the whole index."""
        model, _ = self._built or self._build()
        model.save(str(directory / "bm25"))

    def save(self, directory: Path) -> None:
        with (directory / "bm25_tokens.jsonl").open("w", encoding="utf-8") as fh:
            for pid, toks in zip(self.ids, self.tokens):
                fh.write(json.dumps([pid, toks], ensure_ascii=False) + "\n")
        built = self._built or (self._build() if self.ids else None)
        if built is not None:
            built[0].save(str(directory / "bm25"))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        index = cls()
        path = directory / "bm25_tokens.jsonl"
        if not path.is_file():
            return index
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                pid, toks = json.loads(line)
                index.ids.append(pid)
                index.tokens.append(toks)
        if (directory / "bm25").is_dir() and index.ids:
            import bm25s

            index._bm25 = bm25s.BM25.load(str(directory / "bm25"))
        return index
