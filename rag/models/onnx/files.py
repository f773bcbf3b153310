"""What the ONNX embedding export and its runtime share: file names, the export's version, and how a model folder
is identified and pooled (rag/models/onnx/export.py writes the folder, rag/models/onnx/embedder.py reads it)."""

from __future__ import annotations

import json
from pathlib import Path

from rag.core.errors import ModelMissingError

ONNX_FILE = "model.onnx"
META_FILE = "export.json"
# Part of the cache folder's name: a change to the exported graph (inputs, pooling, opset) gets a new folder
# instead of silently reusing an old export.
EXPORT_VERSION = 1
OPSET = 17
EXPORT_HINT = "create it with `make onnx` (or `python -m rag.models.onnx.embedder`)"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _weights_file(model_path: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_path / name).is_file():
            return model_path / name
    return None


def _source_key(model_path: Path) -> str:
    """Identifies the weights without reading 90 MB at every start: config bytes, weights size and mtime. A
    reinstall of the same package gets a new key and one re-export; a changed model never reuses a stale one."""
    import hashlib

    digest = hashlib.blake2b(digest_size=5)
    digest.update(f"v{EXPORT_VERSION}".encode())
    config = model_path / "config.json"
    digest.update(config.read_bytes() if config.is_file() else b"")
    weights = _weights_file(model_path)
    if weights is not None:
        stat = weights.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _pooling_mode(model_path: Path) -> str:
    config = model_path / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"  # sentence-transformers' default for a plain transformer folder
    modes = json.loads(config.read_text())
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    raise ModelMissingError(
        f"the ONNX embedding backend exports mean or CLS pooling; {config} asks for another: use "
        "RAG_EMBEDDING_BACKEND=torch"
    )
