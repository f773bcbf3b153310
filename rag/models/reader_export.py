"""The trained reader's ONNX export: torch traces the sequence classifier `make reader` saved, once per trained
folder, so answering reads it with ONNX Runtime (rag/models/reader.py) and never imports torch."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

from rag.core.errors import ModelMissingError

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_reader(path: Path, filename: str = "reader.onnx") -> Path:
    """Write path/filename from the weights in path (idempotent; a lock lets one process of several export)."""
    from filelock import FileLock

    target = path / filename
    if target.is_file():
        return target
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(key, value)
    try:
        with FileLock(str(path / f".{filename}.lock")):
            if target.is_file():
                return target
            import torch
            from transformers import AutoModelForSequenceClassification

            model = AutoModelForSequenceClassification.from_pretrained(
                str(path), local_files_only=True, attn_implementation="eager"
            ).eval()

            class Logits(torch.nn.Module):
                def __init__(self, inner: torch.nn.Module):
                    super().__init__()
                    self.inner = inner

                def forward(self, input_ids, attention_mask, token_type_ids):
                    return self.inner(
                        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                    ).logits

            ids = torch.tensor([[101, 2040, 102, 2023, 2003, 102], [101, 2040, 102, 2460, 102, 0]], dtype=torch.long)
            mask = (ids != 0).long()
            types = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]], dtype=torch.long)
            axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS} | {"logits": {0: "batch"}}
            work = Path(tempfile.mkdtemp(prefix=".reader-onnx", dir=path))
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        Logits(model),
                        (ids, mask, types),
                        str(work / filename),
                        input_names=list(_INPUTS),
                        output_names=["logits"],
                        dynamic_axes=axes,
                        opset_version=17,
                        dynamo=False,
                    )
                os.replace(work / filename, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except OSError as exc:
        raise ModelMissingError(
            f"cannot write the reader's ONNX export into {path} ({exc}); rerun `make reader`"
        ) from exc
    return target
