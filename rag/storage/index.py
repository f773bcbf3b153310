"""One loaded generation of the index, as the rest of the code reads it: passages, articles, vectors, BM25."""

from __future__ import annotations

from pathlib import Path

from rag.core.settings import Settings
from rag.core.types import Article, Passage
from rag.storage.bm25 import LexicalIndex
from rag.storage.faiss_store import VectorStore, build_vector_store
from rag.storage.manifest import Manifest
from rag.text.syndication import Signatures


class Index:
    """One loaded generation: passages, articles, vectors and BM25, assembled from its segments."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        articles: dict[str, Article],
        passages: list[Passage],
        store: VectorStore,
        lexical: LexicalIndex,
        signatures: Signatures | None = None,
    ):
        self.root = root
        self.manifest = manifest
        self.articles = articles
        self.passages = passages
        self.passage_by_id = {p.passage_id: p for p in passages}
        self.store = store
        self.lexical = lexical
        self.signatures = signatures or Signatures()

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def generation(self) -> int:
        return self.manifest.generation

    def passages_of(self, doc_id: str) -> list[Passage]:
        return [p for p in self.passages if p.doc_id == doc_id]

    @classmethod
    def empty(cls, root: Path, settings: Settings, *, embedding_model: str, dimension: int) -> Index:
        manifest = Manifest(
            embedding_model=embedding_model,
            dimension=dimension,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            vector_backend=settings.vector_backend,
        )
        return cls(root, manifest, {}, [], build_vector_store(settings, dimension, None), LexicalIndex())
