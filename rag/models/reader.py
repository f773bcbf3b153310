"""The reader: how likely one sentence answers the question, read by a cross-encoder over both at once.

The answer decision's other signals count shared words and cosines; SQuAD 2.0's unanswerable questions are
written to share the words of a paragraph that does not answer them ("What year did the Normans conquer
Sicily?" against a sentence about England), and no word count tells those apart. A cross-encoder reads the
question and the sentence together. It is fine-tuned from the packaged MiniLM weights on SQuAD 2.0 by
`python -m rag.evaluate.train_reader` (the Makefile's `reader` target, minutes on two cores, nothing downloaded) into
a folder that `RAG_READER_PATH` names. It is opt-in (RAG_USE_READER=true): on held-out questions it did not
beat the decision without it (docs/calibration.md), and it costs a second model in memory and time a question.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.core.errors import ModelMissingError
from rag.models.model_files import read_model_meta

if TYPE_CHECKING:
    from rag.core.settings import Settings

META_FILE = "reader.json"
# A reader's folder is trained for one question/sentence layout; the decision model fitted on its scores
# names this version, so a reader trained differently is never read through the wrong weights.
FORMAT = "newsrag-reader-1"


@runtime_checkable
class Reader(Protocol):
    name: str
    kind: str  # "reader" or "judge": which packaged decision model was fitted on its scores

    def score(self, question: str, texts: list[str]) -> list[float]:
        """P(text answers question) for each text, in order."""
        ...


def reader_input(title: str | None, sentence: str) -> str:
    """What the reader reads beside the question: the sentence after its article's title, because news and
    encyclopaedia sentences name their subject as "he" or "the alliance" and the title says who that is."""
    title = (title or "").strip()
    return f"{title}. {sentence}" if title else sentence


ONNX_FILE = "reader.onnx"


class OnnxReader:
    """The reader's sequence classifier run by ONNX Runtime and `tokenizers`, loaded on first use: `rag search` and
    a server that only searches never pay for it, and no query-time path imports torch. The ONNX file is exported
    from the trained weights into the reader's folder once (rag/models/reader_export.py, torch), by `make reader`
    or on first use; the scores are the torch model's (max difference 1e-5, tests/integration/test_reader.py)."""

    kind = "reader"

    def __init__(self, path: Path, *, threads: int | None = None, max_length: int = 128, batch_size: int = 16):
        meta = read_meta(path)
        self.path = path
        self.name = f"{meta.get('format', FORMAT)}:{meta.get('trained_on', 'unknown')}"
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self._loaded: tuple | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                if not (self.path / ONNX_FILE).is_file():
                    from rag.models.reader_export import export_reader  # torch, once per trained reader

                    export_reader(self.path, ONNX_FILE)
                import onnxruntime as ort
                from tokenizers import Tokenizer

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads or 0
                options.log_severity_level = 3
                try:
                    session = ort.InferenceSession(
                        str(self.path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
                    )
                    tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
                except Exception as exc:  # onnxruntime and tokenizers raise their own kinds for a broken file
                    raise ModelMissingError(
                        f"cannot load the reader from {self.path} ({exc}); rebuild it with `make reader`"
                    ) from exc
                tokenizer.no_padding()
                self._loaded = (session, tokenizer)
            return self._loaded

    def _encode(self, tokenizer, question: str, chunk: list[str]) -> list:
        # As the trained tokenizer was called: truncate the sentence, never the question, to max_length.
        try:
            tokenizer.enable_truncation(self.max_length, strategy="only_second")
            return tokenizer.encode_batch([(question, text) for text in chunk])
        except Exception:  # a question longer than max_length alone leaves nothing to cut from the sentence
            tokenizer.enable_truncation(self.max_length, strategy="longest_first")
            return tokenizer.encode_batch([(question, text) for text in chunk])

    def score(self, question: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        session, tokenizer = self._loaded or self._load()
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self._encode(tokenizer, question, texts[start : start + self.batch_size])
            width = max(len(e.ids) for e in encoded)
            ids = np.zeros((len(encoded), width), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros_like(ids)
            for row, e in enumerate(encoded):
                ids[row, : len(e.ids)] = e.ids
                types[row, : len(e.ids)] = e.type_ids
                mask[row, : len(e.ids)] = 1
            logits = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            out += (1.0 / (1.0 + np.exp(-logits.reshape(-1).astype(np.float64)))).tolist()
        return out


def read_meta(path: Path) -> dict:
    return read_model_meta(
        path,
        META_FILE,
        FORMAT,
        kind="newsrag reader",
        target="reader",
        missing="build one with `make reader` or unset RAG_READER_PATH",
    )


def reader_path(settings: Settings) -> Path | None:
    """RAG_READER_PATH if set (it must exist), else models/reader when `make reader` made it, else None."""
    if settings.reader_path is not None:
        if not (settings.reader_path / META_FILE).is_file():
            raise ModelMissingError(
                f"RAG_READER_PATH={settings.reader_path} holds no reader; build one with `make reader` or unset it"
            )
        return settings.reader_path
    default = settings.reader_default_path
    return default if (default / META_FILE).is_file() else None


def load_reader(settings: Settings) -> Reader | None:
    """None unless RAG_USE_READER=true; then the reader must be there (asking for it and silently running
    without it would report figures of a decision the user did not choose)."""
    if not settings.use_reader:
        return load_judge_reader(settings)
    path = reader_path(settings)
    if path is None:
        raise ModelMissingError(
            f"RAG_USE_READER=true but no reader at {settings.reader_default_path}: train it with `make reader` (needs "
            "../shared) or set RAG_READER_PATH"
        )
    threads = settings.query_threads or settings.n_threads or os.cpu_count() or 1
    return OnnxReader(path, threads=threads)


def load_judge_reader(settings: Settings) -> Reader | None:
    """The judge as the reader, when it is built and a decision model was fitted on its scores (packaged as
    rag/answer/decision-judge.json); otherwise None, and the decision reads no reader."""
    from importlib import resources

    from rag.models.judge import JudgeReader, settings_judge

    judge = settings_judge(settings)
    fitted = resources.files("rag.answer").joinpath("decision-judge.json").is_file()
    return JudgeReader(judge) if judge is not None and (fitted or settings.judge_path is not None) else None
