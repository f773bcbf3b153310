"""MiniLM through ONNX Runtime: exported once, offline, from the local sentence-transformers folder.

sentence-transformers' own `backend="onnx"` goes through optimum-onnx, whose only release caps transformers
below 4.58 (we pin 5.23). Measured against it anyway (bench/st_onnx.py, optimum from a --target folder, same
run, load 13-17, 2026-12-05), this module is faster on every figure, so it stays: indexing 1.15x theirs float and
1.12x int8 (theirs: `export_dynamic_quantized_onnx_model`, avx512_vnni), one question 0.67x / 0.88x their p50,
and a cold process to its first query vector 0.08x theirs (8.1 vs 97.5 s: theirs imports torch and optimum).
The export and the runtime are done here with what that path uses underneath:
`torch.onnx.export` of the same weights with the pooling and normalisation inside the graph, and
`onnxruntime` + `tokenizers` at run time, which import no torch. The export folder holds `model.onnx`,
`tokenizer.json` and `export.json` (what it was made from), under ~/.cache/newsrag/onnx/ by default.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.core.errors import ModelMissingError
from rag.models.model_files import default_embedding_model_path, model_label
from rag.models.onnx.files import EXPORT_HINT, META_FILE, ONNX_FILE, _source_key

if TYPE_CHECKING:
    from rag.core.settings import Settings

logger = logging.getLogger(__name__)


def default_onnx_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsrag" / "onnx"


def onnx_dir_for(settings: Settings, model_path: Path) -> Path:
    """Where the export for these settings lives: RAG_EMBEDDING_ONNX_DIR, else a cache folder named by model,
    weights and quantisation, so two models or two quantisations never share a file."""
    if settings.embedding_onnx_dir is not None:
        return Path(settings.embedding_onnx_dir)
    return (
        default_onnx_root() / f"{model_label(model_path)}-{_source_key(model_path)}-{settings.embedding_quantization}"
    )


# Tokens per ONNX Runtime call when indexing (rows x the batch's longest text). Sorted by token count and cut
# by this budget, the bench's SQuAD passages are padded by 9% over their real tokens, where batches of 64 sorted
# by characters were padded by 40% (one 256-token passage set the width of 63 others), and attention costs the
# square of the width: int8 indexing went from 1.3x to 2.0x raw torch (bench/README.md). 2048 pads by 4% but
# measured no faster; each call also gets its own int8 activation scale, so vectors move at the 4th decimal.
TOKEN_BUDGET = 4096


def token_batches(lengths: np.ndarray, max_rows: int, budget: int = TOKEN_BUDGET) -> list[np.ndarray]:
    """Row numbers of each batch: longest texts first, each batch at most `max_rows` rows and `budget` padded
    tokens (at least one row), so a batch holds texts of similar length and short questions still go together."""
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)
        rows = max(1, min(max_rows, budget // width))
        out.append(order[start : start + rows])
        start += rows
    return out


class OnnxEmbedder:
    """The same model as SentenceTransformerEmbedder, run by ONNX Runtime: same tokenizer, truncation, pooling."""

    backend = "onnx"

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        max_seq_length: int = 256,
        batch_size: int = 64,
        threads: int | None = None,
        query_threads: int | None = None,
        quantization: str = "none",
    ):
        if not (folder / ONNX_FILE).is_file() or not (folder / "tokenizer.json").is_file():
            raise ModelMissingError(f"no ONNX embedding model at {folder}: {EXPORT_HINT}")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelMissingError(
                f"the ONNX embedding backend needs onnxruntime ({exc}): pip install onnxruntime==1.32.0 (make install "
                "does), or set RAG_EMBEDDING_BACKEND=torch"
            ) from exc
        self._ort = onnxruntime
        self.folder = folder
        self.name = name
        self.quantization = quantization
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1
        self.query_threads = query_threads or self.threads
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        # As sentence-transformers tokenises: truncate to max_seq_length. No padding here (the MiniLM file asks
        # for a fixed 128): embed() pads each batch itself, to that batch's longest text.
        self._tokenizer.enable_truncation(max_length=max_seq_length)
        self._tokenizer.no_padding()
        self._pad_id = self._tokenizer.token_to_id("[PAD]") or 0
        self._sessions: dict[tuple[int, bool], Any] = {}
        self.dimension = int(self.embed(["dimension probe"]).shape[1])

    def _session(self, threads: int, *, indexing: bool = False) -> Any:
        # onnxruntime fixes a session's thread pool when it is made, so a query (query_threads) and an indexing
        # batch (threads) each get their own session; the second is made only when first needed.
        spin = not (indexing and threads > 1)
        if (threads, spin) not in self._sessions:
            options = self._ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if not spin:
                # An indexing batch's ops each run for milliseconds, so busy-waiting between them buys nothing,
                # and on shared cores a spinning thread takes the core its partner needs (8-15% faster indexing
                # at load 4-6 without). A query's ops take microseconds: its session keeps spinning.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self._sessions[threads, spin] = self._ort.InferenceSession(
                    str(self.folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own kinds for a truncated or foreign file
                raise ModelMissingError(
                    f"cannot load the ONNX embedding model {self.folder / ONNX_FILE}: {exc}; delete the folder and "
                    f"{EXPORT_HINT}"
                ) from exc
        return self._sessions[threads, spin]

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        indexing = len(texts) > self.batch_size
        session = self._session(self.threads if indexing else self.query_threads, indexing=indexing)
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
        out: np.ndarray | None = None  # sized by the first batch: the probe in __init__ runs before self.dimension
        for rows in token_batches(lengths, self.batch_size):
            width = int(lengths[rows[0]])  # longest first: the batch's first row sets its width
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, : lengths[i]] = encoded[i].ids
            mask = (np.arange(width) < lengths[rows][:, None]).astype(np.int64)
            vectors = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)


def _export_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return {}  # a folder made by hand (model.onnx + tokenizer.json) is taken as configured


def build_onnx_embedder(settings: Settings, model_path: Path) -> OnnxEmbedder:
    """Exports on first use when the cache folder is empty, rather than refusing: the export is local (the
    same weights, no network), takes seconds, and happens once per machine; a missing cache (a new user, a
    cleared ~/.cache, another RAG_EMBEDDING_MODEL_PATH) would otherwise break a setting that only picks a
    faster path. Where it cannot be made (no weights, no torch/onnx, an unwritable folder) the error names
    the make target."""
    folder = onnx_dir_for(settings, model_path)
    if not (folder / ONNX_FILE).is_file():
        from rag.models.onnx.export import export_onnx  # torch, once per machine: `make onnx` does it ahead

        logger.warning(
            "exporting the embedding model to ONNX (%s) into %s; once per machine",
            settings.embedding_quantization,
            folder,
        )
        export_onnx(model_path, folder, quantization=settings.embedding_quantization)
    made = _export_meta(folder).get("quantization", settings.embedding_quantization)
    if made != settings.embedding_quantization:
        # Only a configured RAG_EMBEDDING_ONNX_DIR can hold another quantisation: the cache names it in the folder.
        raise ModelMissingError(
            f"{folder} holds the {made} ONNX export, configured "
            f"RAG_EMBEDDING_QUANTIZATION={settings.embedding_quantization}: "
            "point RAG_EMBEDDING_ONNX_DIR at another folder (or unset it) and rerun"
        )
    return OnnxEmbedder(
        folder,
        name=model_label(model_path),
        max_seq_length=settings.embedding_max_seq_length,
        batch_size=settings.embedding_batch_size,
        threads=settings.n_threads,
        query_threads=settings.query_threads,
        quantization=settings.embedding_quantization,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m rag.models.onnx.embedder [none] [int8]`: the export `make onnx` runs; a no-op when it is there."""
    import sys

    from rag.core.errors import RagError
    from rag.core.settings import Settings

    quantizations = (argv if argv is not None else sys.argv[1:]) or ["none", "int8"]
    try:
        if Settings().embedding_onnx_dir is not None:
            # One configured folder holds one export: the configured quantisation's, not every one asked for.
            quantizations = [Settings(embedding_backend="onnx").embedding_quantization]
        for quantization in quantizations:
            settings = Settings(embedding_backend="onnx", embedding_quantization=quantization)
            model_path = Path(settings.embedding_model_path or default_embedding_model_path())
            folder = onnx_dir_for(settings, model_path)
            done = (folder / ONNX_FILE).is_file()
            from rag.models.onnx.export import export_onnx

            export_onnx(model_path, folder, quantization=quantization)
            print(f"ONNX embedding model ({quantization}) {'already in' if done else 'exported to'} {folder}")
    except (RagError, ValueError) as exc:  # ValueError: a quantisation the settings do not know
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
