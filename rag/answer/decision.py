"""The answer decision: how likely the retrieved evidence answers the question, from many signals at once.

A logistic model over the features below, fitted by `rag calibrate` (rag/evaluate/calibrate.py) on questions with
known answers and on the same questions with their gold articles left out. It is a JSON file of weights:
loading and applying it costs microseconds and no library beyond numpy. The pipeline reads the model the
index carries (`decision.json` beside `CURRENT`, written by `rag calibrate` for that corpus), else the one
shipped in this package (fitted on SQuAD 2.0, RealTime QA and NATO splits by bench/train_decision.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from rag.answer.evidence import dated_terms, meta_text, standing
from rag.core.errors import BadInputError
from rag.core.types import Evidence, ScoredPassage
from rag.storage.manifest import write_atomic
from rag.text.answer_types import AnswerType, has_answer_type, question_type
from rag.text.patterns import names_in, numbers_in
from rag.text.timeframe import TimeFrame, age_days, as_date, asked_period_start, time_fit
from rag.text.tokens import content_terms
from rag.verify.support import IdfFn, coverage, question_terms

MODEL_FILE = "decision.json"
READER_MODEL_FILE = "decision-reader.json"  # the packaged model fitted with the reader's features
JUDGE_MODEL_FILE = "decision-judge.json"  # ... and with the judge's answers head as the reader
FEATURES = (
    "strength",  # best sentence relevance: 0.5 cosine + 0.5 idf coverage of its window
    "best_dense",  # best question-sentence cosine
    "best_coverage",  # best idf-weighted share of question terms in a sentence and its neighbours
    "best_sentence_coverage",  # the same in the best sentence alone
    "top_passage_coverage",  # in the top passage with its title, outlet and date
    "all_coverage",  # in every retrieved passage together: low means the question's subject is absent
    "top_passage_dense",  # cosine of the best passage
    "bm25_norm",  # best BM25 score over the idf mass of the question's terms (comparable across questions)
    "agreement",  # share of the top 3 passages both retrievers found
    "margin",  # best relevance minus the best from another article
    "missing_names",  # share of the question's names and numbers no retrieved text mentions
    "missing_rare",  # idf of the rarest question term missing from the best sentence's window, scaled
    "type_known",  # the question asks for a person, date, place, number or amount
    "type_best",  # ... and the best sentence holds one the question does not state
    "type_top3",  # ... or one of the three best sentences does
    "time_cue",  # the question says "this week", "latest", ...
    "time_fit",  # ... and the best sentence's article falls in that time (1), or how far outside (less)
    "question_terms",  # log of the number of content terms in the question
    "reader_best",  # the reader's highest P(answers) over the sentences it read (rag/models/reader.py)
    "reader_at_best",  # its P for the sentence the word and cosine match ranks first
)
READER_FEATURES = ("reader_best", "reader_at_best")
COUNTED: frozenset[AnswerType] = frozenset({"number", "amount"})  # answer types whose absence refuses outright (decide)
BASE_FEATURES = tuple(f for f in FEATURES if f not in READER_FEATURES)  # what a decision without a reader reads


@dataclass
class Decision:
    probability: float
    answer: bool
    features: dict[str, float] = field(default_factory=dict)
    reason: str | None = None  # human-readable, when it abstains


@dataclass
class DecisionModel:
    """Standardise, weigh, squash: p = sigmoid(w . (x - mean) / scale + b). Thresholds chosen on data."""

    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    threshold: float  # answer when p >= threshold
    confident: float  # p at which quoting beats a model that refused (precision target, rag/evaluate/calibrate.py)
    features: tuple[str, ...] = BASE_FEATURES
    trained_on: dict = field(default_factory=dict)

    @property
    def needs_reader(self) -> bool:
        return any(f in READER_FEATURES for f in self.features)

    def probability(self, values: dict[str, float]) -> float:
        x = np.array([values[f] for f in self.features], dtype=np.float64)
        z = float(np.dot(self.weights, (x - np.array(self.mean)) / np.array(self.scale)) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def to_json(self) -> dict:
        return {
            "features": list(self.features),
            "weights": self.weights,
            "bias": self.bias,
            "mean": self.mean,
            "scale": self.scale,
            "threshold": self.threshold,
            "confident": self.confident,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_json(cls, data: dict, *, where: str = "decision model") -> DecisionModel:
        try:
            features = tuple(data["features"])
            model = cls(
                weights=[float(w) for w in data["weights"]],
                bias=float(data["bias"]),
                mean=[float(v) for v in data["mean"]],
                scale=[float(v) or 1.0 for v in data["scale"]],
                threshold=float(data["threshold"]),
                confident=float(data["confident"]),
                features=features,
                trained_on=dict(data.get("trained_on", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"{where} is not a decision model ({exc}); rerun `rag calibrate`") from None
        unknown = set(features) - set(FEATURES)
        if unknown or not (len(features) == len(model.weights) == len(model.mean) == len(model.scale)):
            raise BadInputError(
                f"{where} does not fit this version (features {sorted(unknown) or 'miscounted'}); rerun `rag calibrate`"
            )
        return model

    def save(self, path: Path) -> None:
        # Atomic: every command loads this file, so a save torn by a kill or a full disk must leave the old one.
        write_atomic(Path(path), (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8"))


def model_path(index_dir: Path | None = None, path: Path | None = None) -> Path | None:
    """Which decision model applies: an explicit file, else the index's own calibration, else None (the packaged
    one)."""
    if path is not None:
        if not Path(path).is_file():
            raise BadInputError(f"decision model {path} does not exist (RAG_DECISION_MODEL)")
        return Path(path)
    own = index_dir / MODEL_FILE if index_dir else None
    return own if own is not None and own.is_file() else None


def load_model(index_dir: Path | None = None, path: Path | None = None, *, reader: bool | str = False) -> DecisionModel:
    """`reader`: whether the pipeline runs a reader, or which kind ("reader", "judge"); the packaged model then
    is the one fitted with its scores."""
    packaged = JUDGE_MODEL_FILE if reader == "judge" else READER_MODEL_FILE
    chosen = model_path(index_dir, path)
    if chosen is None:
        # The reader's model is missing only while bench/train_decision.py gathers the rows it is fitted on.
        name = packaged if reader and resources.files("rag.answer").joinpath(packaged).is_file() else MODEL_FILE
        data = json.loads(resources.files("rag.answer").joinpath(name).read_text(encoding="utf-8"))
        return DecisionModel.from_json(data, where=f"the packaged decision model {name}")
    try:
        data = json.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read the decision model {chosen}: {exc}") from None
    model = DecisionModel.from_json(data, where=str(chosen))
    if model.needs_reader and not reader:
        raise BadInputError(
            f"{chosen} was fitted with the reader's scores but no reader is loaded: build it with `make reader`, or "
            "rerun `rag calibrate` without it"
        )
    return model


def features(
    evidence: Evidence, scored: list[ScoredPassage], frame: TimeFrame | None, idf: IdfFn | None
) -> dict[str, float]:
    """Every signal of FEATURES for one question's evidence; all zeros when nothing was retrieved."""
    out = dict.fromkeys(FEATURES, 0.0)
    question = evidence.question
    terms = question_terms(question)
    out["question_terms"] = math.log1p(len(terms))
    kind: AnswerType | None = question_type(question)
    out["type_known"] = float(kind is not None)
    out["time_cue"] = float(bool(frame and frame.has_cue))
    # select_evidence already looked the question's names and numbers up in these passages and their metadata.
    wanted = numbers_in(question) | names_in(question)
    out["missing_names"] = len(evidence.missing_terms) / len(wanted) if wanted else 0.0
    sentences = sorted(evidence.sentences, key=lambda s: -standing(s))
    if not sentences or not scored:
        out["missing_names"] = 1.0 if wanted else 0.0
        return out
    texts = [sp.passage.text + " " + meta_text(sp.passage.meta) for sp in scored]
    best = sentences[0]
    out["strength"] = best.relevance
    out["best_dense"] = max(s.dense for s in sentences)
    out["best_coverage"] = max(s.coverage for s in sentences)
    # "in March 2024" is settled by an article of 14 March 2024 (evidence.dated_terms): judged on the other words.
    undated = terms - dated_terms(question, scored).get(best.passage_id, set())
    out["best_sentence_coverage"] = coverage(undated, content_terms(best.text), idf)
    out["top_passage_coverage"] = coverage(terms, content_terms(texts[0]), idf)
    out["all_coverage"] = coverage(terms, content_terms(" ".join(texts)), idf)
    out["top_passage_dense"] = max((sp.dense_score or 0.0) for sp in scored)
    weight = idf or (lambda _t: 1.0)
    mass = sum(weight(t) for t in terms) or 1.0
    out["bm25_norm"] = max((sp.bm25_score or 0.0) for sp in scored) / mass
    top = scored[:3]
    out["agreement"] = sum(sp.dense_score is not None and sp.bm25_score is not None for sp in top) / len(top)
    other = [s.relevance for s in sentences if s.doc_id != best.doc_id]
    out["margin"] = best.relevance - (other[0] if other else 0.0)
    window = content_terms(" ".join(s.text for s in sentences if s.passage_id == best.passage_id))
    missing = [weight(t) for t in undated if t not in window]
    top_idf = max((weight(t) for t in terms), default=1.0) or 1.0
    out["missing_rare"] = max(missing, default=0.0) / top_idf
    if kind is not None:
        out["type_best"] = float(has_answer_type(best.text, kind, question))
        out["type_top3"] = float(any(has_answer_type(s.text, kind, question) for s in sentences[:3]))
    read = [s.reader for s in sentences if s.reader is not None]
    if read:
        out["reader_best"] = max(read)
        out["reader_at_best"] = best.reader if best.reader is not None else 0.0
    if frame and frame.has_cue:
        article = next((sp.passage.meta.date for sp in scored if sp.passage.passage_id == best.passage_id), None)
        # An undated article leaves the feature at 0, as the model was fitted; evidence ordering counts it as 1.
        if age_days(article, frame.as_of) is not None:
            out["time_fit"] = time_fit(article, frame)
    return out


def explain(values: dict[str, float], evidence: Evidence, probability: float, threshold: float) -> str:
    """Why it abstains, in words a reader understands: the strongest reason first."""
    if not evidence.sentences:
        return "nothing relevant was retrieved"
    if evidence.missing_terms:
        return "the articles never mention " + ", ".join(evidence.missing_terms)
    if values.get("type_known") and not values.get("type_top3"):
        kind = question_type(evidence.question)
        return (
            f"no {kind} that answers the question appears in the closest passages "
            f"(confidence {probability:.2f} < {threshold:.2f})"
        )
    if values.get("time_cue") and values.get("time_fit", 1.0) < 0.5:
        return (
            "the closest articles are not from the time the question asks about "
            f"(confidence {probability:.2f} < {threshold:.2f})"
        )
    read = [s.reader for s in evidence.sentences if s.reader is not None]
    if read and max(read) < 0.5:
        return (
            f"no retrieved sentence reads as an answer to the question (reader {max(read):.2f}; "
            f"confidence {probability:.2f} < {threshold:.2f})"
        )
    return f"evidence too weak (confidence {probability:.2f} < {threshold:.2f})"


def decide(
    model: DecisionModel,
    evidence: Evidence,
    scored: list[ScoredPassage],
    frame: TimeFrame | None,
    idf: IdfFn | None,
    *,
    threshold: float | None = None,
) -> Decision:
    """`threshold` overrides the model's own (RAG_ANSWER_THRESHOLD)."""
    values = features(evidence, scored, frame, idf)
    if not evidence.sentences:
        return Decision(probability=0.0, answer=False, features=values, reason="nothing relevant was retrieved")
    cut = model.threshold if threshold is None else threshold
    p = model.probability(values)
    answer = p >= cut
    if answer and (late := predates_question(evidence.question, scored)):
        return Decision(probability=p, answer=False, features=values, reason=late)
    if answer and not values["type_top3"] and (kind := question_type(evidence.question)) in COUNTED:
        # How many / how much with no number among the best sentences: digits and number words are found reliably
        # (names and dates are not), and on the fitting rows 5 of the 6 such questions the model answered were wrong.
        return Decision(
            probability=p,
            answer=False,
            features=values,
            reason=f"no {kind} that answers the question appears in the closest passages",
        )
    return Decision(
        probability=p, answer=answer, features=values, reason=None if answer else explain(values, evidence, p, cut)
    )


def predates_question(question: str, scored: list[ScoredPassage]) -> str | None:
    """Why no retrieved article can report what the question asks, when each one was published before the period
    it names ("what did NATO decide in July 2024?" over articles from the spring): the words match, the event is
    later. Undated articles could be from any time, so one of them keeps the question open."""
    start = asked_period_start(question)
    if start is None or not scored:
        return None
    days = [as_date(sp.passage.meta.date) for sp in scored]
    if any(d is None or d >= start for d in days):
        return None
    return (
        f"the closest articles were all published before {start:%B %Y}, the time the question asks about "
        f"(latest {max(days):%d %B %Y})"
    )
