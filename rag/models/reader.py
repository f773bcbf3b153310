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

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.core.errors import ModelMissingError

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


class CrossEncoderReader:
    """A BERT-style sequence classifier with one logit, loaded on first use: `rag search` and a server that
    only searches never pay for it (nor for torch, under the ONNX embedder)."""

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
                import torch
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                model = AutoModelForSequenceClassification.from_pretrained(str(self.path))
                model.eval()
                self._loaded = (torch, AutoTokenizer.from_pretrained(str(self.path)), model)
            return self._loaded

    def score(self, question: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        torch, tokenizer, model = self._loaded or self._load()
        # Same thread count as the embedder's question batches (it sets the process-wide value the same way),
        # so a server's request threads never flip it back and forth between the two.
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                enc = tokenizer([question] * len(chunk), chunk, truncation="only_second", max_length=self.max_length, padding=True, return_tensors="pt")
                out += torch.sigmoid(model(**enc).logits.squeeze(-1)).tolist()
        return out


def read_meta(path: Path) -> dict:
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise ModelMissingError(f"{path} is not a newsrag reader folder (no {META_FILE}); build one with `make reader` or unset RAG_READER_PATH")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"{meta_path} is unreadable ({exc}); rebuild it with `make reader`") from exc
    if meta.get("format") != FORMAT:
        raise ModelMissingError(f"{path} holds a reader of format {meta.get('format')!r}, this version reads {FORMAT!r}; rebuild it with `make reader`")
    return meta


def reader_path(settings: Settings) -> Path | None:
    """RAG_READER_PATH if set (it must exist), else models/reader when `make reader` made it, else None."""
    if settings.reader_path is not None:
        if not (settings.reader_path / META_FILE).is_file():
            raise ModelMissingError(f"RAG_READER_PATH={settings.reader_path} holds no reader; build one with `make reader` or unset it")
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
        raise ModelMissingError(f"RAG_USE_READER=true but no reader at {settings.reader_default_path}: train it with `make reader` (needs ../shared) or set RAG_READER_PATH")
    threads = settings.query_threads or settings.n_threads or os.cpu_count() or 1
    return CrossEncoderReader(path, threads=threads)


def load_judge_reader(settings: Settings) -> Reader | None:
    """The judge as the reader, when it is built and a decision model was fitted on its scores (packaged as
    rag/answer/decision-judge.json); otherwise None, and the decision reads no reader."""
    from importlib import resources

    from rag.models.judge import JudgeReader, settings_judge

    judge = settings_judge(settings)
    fitted = resources.files("rag.answer").joinpath("decision-judge.json").is_file()
    return JudgeReader(judge) if judge is not None and (fitted or settings.judge_path is not None) else None
