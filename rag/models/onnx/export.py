"""The ONNX export of the embedding model: torch and transformers trace the local sentence-transformers weights
with pooling and normalisation inside the graph, onnxruntime's optimizer fuses it, and int8 is quantised from it.
Run once per machine (`make onnx`, or on first use of the ONNX backend); nothing at query time imports this
module, so torch stays out of every serving process (rag/models/onnx/embedder.py runs the result)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from rag.core.errors import ModelMissingError
from rag.models.onnx.files import (
    _INPUTS,
    EXPORT_HINT,
    EXPORT_VERSION,
    META_FILE,
    ONNX_FILE,
    OPSET,
    _pooling_mode,
    _source_key,
    _weights_file,
)


def export_onnx(model_path: Path, target: Path, *, quantization: str = "none") -> Path:
    """Export `model_path` into `target` (idempotent: returns at once when the export is there). Several
    processes may start at once (`rag serve` workers): a lock lets one export while the others wait for it."""
    from filelock import FileLock

    if (target / ONNX_FILE).is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(target.parent / f".{target.name}.lock"))
        with lock:
            if (target / ONNX_FILE).is_file():
                return target
            _export_into(model_path, target, quantization)
    except OSError as exc:
        raise ModelMissingError(
            f"cannot write the ONNX embedding model to {target} ({exc.strerror or exc}); {EXPORT_HINT} with a writable "
            "RAG_EMBEDDING_ONNX_DIR"
        ) from exc
    return target


def _export_into(model_path: Path, target: Path, quantization: str) -> None:
    if _weights_file(model_path) is None or not (model_path / "tokenizer.json").is_file():
        raise ModelMissingError(
            f"cannot export the ONNX embedding model: {model_path} has no weights or tokenizer.json to export from; "
            f"{EXPORT_HINT} once the model is there, or set RAG_EMBEDDING_BACKEND=torch"
        )
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is for every user of the machine to read
    try:
        if quantization == "int8":
            # Quantised from the float export (its own cache folder), as onnxruntime's dynamic quantiser expects.
            plain = export_onnx(
                model_path,
                target.with_name(target.name.removesuffix("-int8") + "-none")
                if target.name.endswith("-int8")
                else work / "float",
            )
            quantize_int8(plain / ONNX_FILE, work / ONNX_FILE)
        else:
            _export_float(model_path, work / ONNX_FILE)
        shutil.copyfile(model_path / "tokenizer.json", work / "tokenizer.json")
        shutil.rmtree(work / "float", ignore_errors=True)
        (work / ".float.lock").unlink(missing_ok=True)
        meta = {
            "source": str(model_path),
            "source_key": _source_key(model_path),
            "quantization": quantization,
            "pooling": _pooling_mode(model_path),
            "opset": OPSET,
            "export_version": EXPORT_VERSION,
        }
        (work / META_FILE).write_text(json.dumps(meta, indent=2))
        if target.exists():  # a half-made folder from a killed export: never has model.onnx, see the check above
            shutil.rmtree(target)
        os.replace(work, target)  # whole folder or nothing: a reader never sees model.onnx without its tokenizer
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_float(model_path: Path, out: Path) -> None:
    # Offline and quiet before the import, as for the torch embedder: no hub, no "Loading weights" bar.
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ):
        os.environ.setdefault(key, value)
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelMissingError(
            f"cannot export the ONNX embedding model without torch and transformers ({exc}); {EXPORT_HINT}"
        ) from exc
    try:
        import onnx  # noqa: F401  torch.onnx.export needs it; missing, it fails deep inside with an odd message
    except ImportError as exc:
        raise ModelMissingError(
            "cannot export the ONNX embedding model: the onnx package is missing (pip install onnx==1.23.2; make "
            f"install does); {EXPORT_HINT}"
        ) from exc
    pooling = _pooling_mode(model_path)
    # Eager attention: SDPA's tracing keeps Python branches on the example's shapes; eager is plain matmuls.
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    # The example has padding, so nothing in the trace can assume an all-ones mask.
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2460, 102, 0, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS} | {"sentence_embedding": {0: "batch"}}
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's advice about the legacy exporter, not the user's concern
        # The TorchScript exporter (dynamo=False): the dynamo one needs onnxscript and gave no faster graph here.
        torch.onnx.export(
            Pooled(model),
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    if model.config.model_type == "bert":
        fuse_bert(out, num_heads=model.config.num_attention_heads, hidden_size=model.config.hidden_size)


def fuse_bert(path: Path, *, num_heads: int, hidden_size: int) -> None:
    """onnxruntime's transformer optimizer folds each layer's attention, skip + layer norm and bias + GELU into
    single fused kernels (6 Attention, 12 SkipLayerNormalization, 6 BiasGelu for MiniLM-L6): the graph the
    runtime's own session-level passes do not fully reach. Vectors unchanged (cosine 1.0000 to torch)."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=1
    )
    fused.save_model_to_file(str(path))


def quantize_int8(source: Path, out: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelMissingError(f"cannot quantise the ONNX embedding model ({exc}); {EXPORT_HINT}") from exc
    # Weights int8, activations quantised per batch at run time: no calibration data needed. Per channel: one
    # scale per output column kept cosine to torch at 0.983-0.989 (min over passages) where one scale per
    # tensor fell to 0.926. The fused Attention op's inputs have no inferred type, hence DefaultTensorType.
    import onnx

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process, printed on the root logger; measured fine without
    try:
        quantize_dynamic(
            str(source),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
