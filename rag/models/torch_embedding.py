"""The torch embedding backend (RAG_EMBEDDING_BACKEND=torch): sentence-transformers on CPU. Export, training and
that setting import it; the default ONNX backend (rag/models/onnx/embedder.py) gives the same vectors without it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rag.core.errors import ModelMissingError
from rag.models.model_files import model_label, require_model_folder


class SentenceTransformerEmbedder:
    """sentence-transformers on CPU, loaded from a local folder with every hub lookup switched off."""

    backend = "torch"
    quantization = "none"

    def __init__(
        self,
        model_path: Path,
        *,
        batch_size: int = 64,
        max_seq_length: int = 256,
        threads: int | None = None,
        query_threads: int | None = None,
    ):
        require_model_folder(model_path)
        # Offline flags before the import: the library must never reach for a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "Loading weights" bars in CLI output
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self.threads = threads or torch.get_num_threads()
        self.query_threads = query_threads or self.threads
        try:
            self._model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        except Exception as exc:  # the library raises many kinds; the user needs one message
            raise ModelMissingError(f"cannot load embedding model from {model_path}: {exc}") from exc
        self._model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.name = model_label(model_path)
        self.dimension = int(self._model.get_embedding_dimension())
        self._torch = torch

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # A query or a prompt's evidence sentences (one batch or less) run on query_threads: on an idle machine
        # every thread helps (a question 12.8 -> 9.9 ms, evidence 296 -> 185 ms on 2 cores), but beside
        # llama.cpp or other requests the team's barrier waits for a descheduled thread (24 ms on one thread vs
        # 51-160 ms on two), so the server runs them on one (Settings.query_threads). Indexing batches keep
        # every thread. torch's setting is process-wide; a race between requests only costs speed.
        threads = self.query_threads if len(texts) <= self.batch_size else self.threads
        if self._torch.get_num_threads() != threads:
            self._torch.set_num_threads(threads)
        with self._torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer.tokenize(text))
