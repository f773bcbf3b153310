"""The judge: one small cross-encoder that reads two texts at once and says whether a sentence answers a
question, and whether a quote entails, contradicts or says nothing about a claim.

Word counts cannot see "is not set to be upgraded", a NATO-Russia commission where the quote has NATO-Ukraine,
or Kuleba saying what Stoltenberg said; a model that reads both texts together can. It is MiniLM-L6 fine-tuned
here by `python -m rag.evaluate.judge_train` (`make judge`: minutes on two cores, nothing downloaded) with one
shared encoder and four logits: [answers, entail, contradict, neutral]. The first segment says which job is
asked ("question: ..." or "claim: ..."), so one forward pass serves either head. At run time it is an ONNX
graph run by onnxruntime with the fast tokenizer: no torch import, loaded on first use.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.core.errors import ModelMissingError
from rag.models.model_files import read_model_meta

if TYPE_CHECKING:
    from rag.core.settings import Settings

META_FILE = "judge.json"
TOKENIZER_FILE = "tokenizer.json"
# The input layout and logit order the graph was trained for; a folder of another format is refused, never
# read through the wrong layout.
FORMAT = "newsrag-judge-1"
DEFAULT_PATH = Path("models/judge")
BUILD_HINT = "build it with `make judge` (needs ../shared), or set RAG_JUDGE_PATH to a judge folder"
ANSWERS_PREFIX = "question: "
CLAIM_PREFIX = "claim: "


@dataclass(frozen=True)
class Relation:
    """Probabilities that a quote entails, contradicts, or says nothing about a claim (they sum to 1)."""

    entail: float
    contradict: float
    neutral: float

    @property
    def label(self) -> str:
        best = max(
            ("entail", self.entail), ("contradict", self.contradict), ("neutral", self.neutral), key=lambda kv: kv[1]
        )
        return best[0]


@runtime_checkable
class Judge(Protocol):
    name: str

    def answers(self, question: str, texts: list[str]) -> list[float]:
        """P(text answers question) for each text, in order."""
        ...

    def relation(self, claim: str, quotes: list[str]) -> list[Relation]:
        """Entail / contradict / neutral probabilities of each quote against the claim, in order."""
        ...


def judge_text(title: str | None, sentence: str, date: str | None = None) -> str:
    """What the judge reads beside the question or claim: the sentence after its article's title (and date),
    because news sentences name their subject as "he" or "the alliance" and the title says who that is."""
    head = " ".join(x for x in ((title or "").strip(), f"({date})" if date else "") if x)
    return f"{head}. {sentence}" if head else sentence


def judge_path(explicit: Path | None = None) -> Path:
    """The judge folder: `explicit`, else models/judge; it must hold a judge."""
    path = explicit or DEFAULT_PATH
    if not (path / META_FILE).is_file():
        raise ModelMissingError(f"no judge model at {path}: {BUILD_HINT}")
    return path


def settings_judge(settings: Settings) -> OnnxJudge | None:
    """The judge the settings name: RAG_JUDGE_PATH (which must hold one), else models/judge when
    RAG_USE_JUDGE=true and `make judge` made it; None otherwise (the word checks then stand alone)."""
    threads = settings.query_threads or settings.n_threads or min(2, os.cpu_count() or 1)
    if settings.judge_path is not None:
        return OnnxJudge(judge_path(settings.judge_path), threads=threads)
    if not settings.use_judge or not (settings.judge_default_path / META_FILE).is_file():
        return None
    return OnnxJudge(settings.judge_default_path, threads=threads)


def read_meta(path: Path) -> dict:
    return read_model_meta(path, META_FILE, FORMAT, kind="judge", target="judge", missing=BUILD_HINT)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class OnnxJudge:
    """The exported judge under onnxruntime. `variant` picks model-int8.onnx or model.onnx; by default the one
    the training run kept (int8 when it held the held-out accuracy). Thread-safe; the session is made once."""

    def __init__(self, path: Path, *, threads: int | None = None, variant: str | None = None, batch_size: int = 32):
        meta = read_meta(path)
        self.path = path
        self.meta = meta
        self.variant = variant or meta.get("runtime", "float")
        if self.variant not in ("float", "int8"):
            raise ModelMissingError(f"judge variant must be float or int8, not {self.variant!r}")
        self.model_file = path / ("model-int8.onnx" if self.variant == "int8" else "model.onnx")
        if not self.model_file.is_file() or not (path / TOKENIZER_FILE).is_file():
            raise ModelMissingError(f"{path} has no {self.model_file.name} or {TOKENIZER_FILE}: {BUILD_HINT}")
        self.name = f"{FORMAT}:{meta.get('recipe', 'unknown')}:{self.variant}"
        self.max_length = int(meta.get("max_length", 128))
        self.threads = threads or min(2, os.cpu_count() or 1)
        self.batch_size = batch_size
        self._loaded: tuple | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                try:
                    import onnxruntime
                    from tokenizers import Tokenizer
                except ImportError as exc:
                    raise ModelMissingError(
                        f"the judge needs onnxruntime and tokenizers ({exc}); `make install` installs them"
                    ) from exc
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                try:
                    session = onnxruntime.InferenceSession(
                        str(self.model_file), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own kinds for a truncated or foreign file
                    raise ModelMissingError(
                        f"cannot load the judge {self.model_file}: {exc}; delete the folder and rebuild it with `make "
                        "judge`"
                    ) from exc
                tokenizer = Tokenizer.from_file(str(self.path / TOKENIZER_FILE))
                # As in training: the pair cut to max_length, longest segment first; padded per batch, not to 128.
                tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")
                tokenizer.no_padding()
                inputs = {i.name for i in session.get_inputs()}
                self._loaded = (session, tokenizer, inputs)
            return self._loaded

    def logits(self, firsts: list[str], texts: list[str]) -> np.ndarray:
        """Raw [answers, entail, contradict, neutral] logits per (first, text) pair."""
        if not texts:
            return np.zeros((0, 4), dtype=np.float32)
        session, tokenizer, inputs = self._loaded or self._load()
        encs = tokenizer.encode_batch(list(zip(firsts, texts)))
        # Short pairs batched together: padding to a batch's longest costs the square of the width in attention.
        order = np.argsort([-len(e.ids) for e in encs], kind="stable")
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encs[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for k, r in enumerate(rows):
                n = len(encs[r].ids)
                ids[k, :n], mask[k, :n], types[k, :n] = encs[r].ids, 1, encs[r].type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[rows] = session.run(None, {k: v for k, v in feed.items() if k in inputs})[0]
        return out

    def answers(self, question: str, texts: list[str]) -> list[float]:
        logits = self.logits([ANSWERS_PREFIX + question] * len(texts), texts)
        return _sigmoid(logits[:, 0]).astype(float).tolist()

    def relation(self, claim: str, quotes: list[str]) -> list[Relation]:
        probs = _softmax(self.logits([CLAIM_PREFIX + claim] * len(quotes), quotes)[:, 1:4])
        return [Relation(float(p[0]), float(p[1]), float(p[2])) for p in probs]


SUPPORTED, CONTRADICTED, NOT_FOUND = "supported", "contradicted", "not_found"


def verdict(relations: list[Relation], *, support: float = 0.5, contradict: float = 0.5) -> tuple[str, int | None]:
    """The verdict on a claim from its best quotes, and the quote that decides it: supported when some quote
    entails it at least `support` and at least as strongly as any quote contradicts it; else contradicted when
    some quote contradicts it at least `contradict`; else not found. A quote that entails outranks one that
    contradicts because the candidates are the archive's nearest sentences: one that states the claim beats
    a neighbour about something else that the model reads as clashing."""
    if not relations:
        return NOT_FOUND, None
    e = max(range(len(relations)), key=lambda i: relations[i].entail)
    c = max(range(len(relations)), key=lambda i: relations[i].contradict)
    if relations[e].entail >= support and relations[e].entail >= relations[c].contradict:
        return SUPPORTED, e
    if relations[c].contradict >= contradict:
        return CONTRADICTED, c
    return NOT_FOUND, None


def load_judge(path: Path | None = None, *, threads: int | None = None, variant: str | None = None) -> OnnxJudge:
    """The judge at `path` (see judge_path); raises ModelMissingError naming `make judge` when it is not built."""
    return OnnxJudge(judge_path(path), threads=threads, variant=variant)


class JudgeReader:
    """The judge's answers head where the pipeline takes a reader: P(sentence answers the question)."""

    kind = "judge"

    def __init__(self, judge: OnnxJudge):
        self.judge = judge
        self.name = judge.name

    def score(self, question: str, texts: list[str]) -> list[float]:
        return self.judge.answers(question, texts)
