"""Text -> unit vectors. The real model comes from a local folder, never from a hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.models.model_files import default_embedding_model_path, require_model_folder

if TYPE_CHECKING:
    from rag.core.settings import Settings


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows of a fixed width."""

    name: str
    dimension: int

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def embedder_build(embedder: Embedder) -> tuple[str, str]:
    """(backend, quantization) that made an embedder's vectors, for the index manifest; an Embedder without
    the attributes (a test's fake) counts as the default torch build."""
    return getattr(embedder, "backend", "torch"), getattr(embedder, "quantization", "none")


def build_embedder(settings: Settings) -> Embedder:
    path = require_model_folder(Path(settings.embedding_model_path or default_embedding_model_path()))
    if settings.embedding_backend == "onnx":
        from rag.models.onnx.embedder import build_onnx_embedder

        return build_onnx_embedder(settings, Path(path))
    # RAG_EMBEDDING_BACKEND=torch: the one way from here to torch (an ignored edge of import-linter's
    # "never import torch" contract, pyproject.toml).
    from rag.models.torch_embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        Path(path),
        batch_size=settings.embedding_batch_size,
        max_seq_length=settings.embedding_max_seq_length,
        threads=settings.n_threads,
        query_threads=settings.query_threads,
    )
