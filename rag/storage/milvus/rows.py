"""Rows as Milvus stores them: one per passage (text, vector, BM25 terms) and one or more per article (its record,
signature and text in pieces under Milvus's VARCHAR limit)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from rag.core.types import Article, Passage
from rag.storage.manifest import DocumentRecord
from rag.storage.milvus.search import bm25_terms

if TYPE_CHECKING:
    pass


TEXT_PIECE = 16_000  # characters of article text per row: at most 64 KB in UTF-8, Milvus's VARCHAR limit


MAX_VARCHAR = 65_535


SEPARATOR = "/"  # "<doc_id>/<piece>": document ids hold no "/"


def passage_row(passage: Passage, tokens: list[str], vector: np.ndarray, content_hash: str) -> dict:
    return {
        "passage_id": passage.passage_id,
        "doc_id": passage.doc_id,
        "content_hash": content_hash,
        "ordinal": passage.ordinal,
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
        "tokens": " ".join(tokens),
        "terms": bm25_terms(tokens),
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
    }


def article_rows(article: Article, record: DocumentRecord, signature: np.ndarray | None) -> list[dict]:
    """The record row (piece 0, with the text's first piece) and one row per further piece of the text, which
    carries the content hash of its version in `record`."""
    text = article.text
    bodies = [text[i : i + TEXT_PIECE] for i in range(0, len(text), TEXT_PIECE)] or [""]
    head = {
        "record": record.model_dump(),
        "meta": article.meta.model_dump(),
        "path": article.path,
        "pieces": len(bodies),
        "signature": signature.tolist() if signature is not None else None,
    }
    return [
        {
            "key": f"{article.doc_id}{SEPARATOR}{n}",
            "doc_id": article.doc_id,
            "piece": n,
            "body": body,
            "record": json.dumps(head, ensure_ascii=False) if n == 0 else article.content_hash,
            "unused_vector": [0.0, 0.0],
        }
        for n, body in enumerate(bodies)
    ]


LIVE_KEY = "~live"  # the index's own row; no document id starts with "~" (rag/ingest/corpus.py validate_doc_id)
