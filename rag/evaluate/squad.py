"""SQuAD 2.0 as an eval set: every paragraph becomes a corpus file, a seeded sample of questions a question file.

The corpus always holds every paragraph, so retrieval has to find the right one among all of them;
--limit only samples questions. Unanswerable questions (written to look answerable from their paragraph)
become must_include [] questions: the right behaviour is to abstain.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import BadInputError
from rag.evaluate.questions import read_json
from rag.evaluate.scoring import normalise

DEFAULT_SEED = 13
MAX_SLUG_CHARS = 80


@dataclass
class SquadExport:
    corpus_dir: Path
    questions_path: Path
    paragraphs: int
    answerable: int
    unanswerable: int
    stale_removed: int


def slugify(title: str) -> str:
    """'Sky_(United_Kingdom)' -> 'sky_united_kingdom': ASCII, safe in a file name and a doc id."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_title.lower()).strip("_")[:MAX_SLUG_CHARS].rstrip("_") or "untitled"


def doc_id_for(title: str, paragraph_index: int) -> str:
    return f"squad_{slugify(title)}_{paragraph_index}"


def paragraph_text(title: str, paragraph_index: int, context: str) -> str:
    """A title line, then the paragraph on one line.

    The cleaner takes a headline of 3-30 words before the body as the title; many Wikipedia titles are one
    word ("Normans"), so the paragraph number rides along. Newlines inside a context are joined because
    the cleaner would read a short line as clutter.
    """
    return f"{title.replace('_', ' ')}, paragraph {paragraph_index}\n\n{' '.join(context.split())}\n"


def load_squad(path: Path) -> list[dict[str, Any]]:
    data = read_json(path, "SQuAD file")
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list) or not articles:
        raise BadInputError(f"{path} has no `data` list of articles; expected SQuAD 2.0 JSON (dev-v2.0.json)")
    for i, article in enumerate(articles):
        if (
            not isinstance(article, dict)
            or not isinstance(article.get("title"), str)
            or not isinstance(article.get("paragraphs"), list)
        ):
            raise BadInputError(f"{path}: data[{i}] needs a `title` and a `paragraphs` list")
        for j, para in enumerate(article["paragraphs"]):
            if (
                not isinstance(para, dict)
                or not isinstance(para.get("context"), str)
                or not isinstance(para.get("qas"), list)
            ):
                raise BadInputError(f"{path}: data[{i}].paragraphs[{j}] needs a `context` string and a `qas` list")
    return articles


def question_row(qa: dict[str, Any], doc_id: str, title: str) -> dict[str, Any] | None:
    """A question-file row, or None for a question too broken to score (no text, or no answer given)."""
    question = " ".join(str(qa.get("question", "")).split())
    if not question:
        return None
    base = {"id": str(qa.get("id")), "question": question, "squad_title": title}
    if qa.get("is_impossible"):
        # The paragraph it was written against is kept for analysis; gold_docs stays empty.
        return {
            **base,
            "answer": "ABSTAIN",
            "must_include": [],
            "gold_docs": [],
            "type": "unanswerable",
            "squad_paragraph": doc_id,
        }
    alternatives: list[str] = []
    seen: set[str] = set()
    for answer in qa.get("answers") or []:
        text = " ".join(str(answer.get("text", "")).split())
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            alternatives.append(text)
    if not alternatives:
        return None
    return {**base, "answer": alternatives[0], "must_include": [alternatives], "gold_docs": [doc_id], "type": "single"}


def sample(
    rows: list[dict[str, Any]], *, limit: int | None, seed: int, unanswerable_share: float | None
) -> list[dict[str, Any]]:
    """A seeded sample in the dataset's order; with a share, that fraction of it unanswerable (as far as there are)."""
    rng = random.Random(seed)
    order = {id(r): i for i, r in enumerate(rows)}
    limit = len(rows) if limit is None else min(limit, len(rows))
    if unanswerable_share is None:
        picked = rng.sample(rows, limit)
    else:
        unanswerable = [r for r in rows if not r["must_include"]]
        answerable = [r for r in rows if r["must_include"]]
        n_un = min(round(limit * unanswerable_share), len(unanswerable))
        picked = rng.sample(unanswerable, n_un) + rng.sample(answerable, min(limit - n_un, len(answerable)))
    return sorted(picked, key=lambda r: order[id(r)])


def export_squad(
    squad_path: Path,
    out_dir: Path,
    *,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    unanswerable_share: float | None = None,
) -> SquadExport:
    """Write out_dir/corpus/<doc_id>.txt for every paragraph and out_dir/questions.jsonl for the sample."""
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    if unanswerable_share is not None and not 0.0 <= unanswerable_share <= 1.0:
        raise BadInputError(f"--unanswerable-share must be between 0 and 1, got {unanswerable_share}")
    articles = load_squad(squad_path)

    corpus_dir = Path(out_dir) / "corpus"
    try:
        corpus_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create {corpus_dir}: {exc.strerror}") from None
    written: set[str] = set()
    rows: list[dict[str, Any]] = []
    for article in articles:
        title = article["title"]
        for index, para in enumerate(article["paragraphs"]):
            doc_id = doc_id_for(title, index)
            if f"{doc_id}.txt" in written:
                raise BadInputError(
                    f"{squad_path}: two articles map to the document id {doc_id}; their titles differ only in "
                    "punctuation"
                )
            (corpus_dir / f"{doc_id}.txt").write_text(paragraph_text(title, index, para["context"]), encoding="utf-8")
            written.add(f"{doc_id}.txt")
            rows += [
                row
                for qa in para["qas"]
                if isinstance(qa, dict) and (row := question_row(qa, doc_id, title.replace("_", " ")))
            ]
    # A previous export from another file would leave paragraphs behind that no question points to.
    stale = [p for p in corpus_dir.glob("squad_*.txt") if p.name not in written]
    for p in stale:
        p.unlink()

    picked = sample(rows, limit=limit, seed=seed, unanswerable_share=unanswerable_share)
    questions_path = Path(out_dir) / "questions.jsonl"
    questions_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked), encoding="utf-8")
    unanswerable = sum(1 for r in picked if not r["must_include"])
    return SquadExport(
        corpus_dir=corpus_dir,
        questions_path=questions_path,
        paragraphs=len(written),
        answerable=len(picked) - unanswerable,
        unanswerable=unanswerable,
        stale_removed=len(stale),
    )
