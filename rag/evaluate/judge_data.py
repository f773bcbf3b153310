"""The judge's training and held-out pairs, built by a seeded recipe from ../shared (read, never copied).

What each source teaches:
- SQuAD 2.0 dev (answers head): the sentence holding the answer against same-paragraph sentences that share
  the question's words (hard negatives), SQuAD's adversarial unanswerables against the sentences their writers
  made them look answerable from, and unanswerables made here by changing a question's year or name to one the
  answer sentence does not carry (SQuAD 2.0's own recipe): word overlap is not an answer.
- QNLI dev (answers head): more question/sentence answerability in another annotator's hands. QNLI came from
  SQuAD 1.1, so an item goes to training only when its question is in a training-half SQuAD article or in no
  SQuAD dev article at all; the items of held-out-half articles are the QNLI held-out figure.
- FEVER Symmetric (relation head): SUPPORTS -> entail, REFUTES -> contradict on minimal-edit contrast pairs, so a
  claim's wording alone never gives the label; a claim paired with another pair's evidence -> neutral.
- Rule-made pairs from RealTime QA news sentences and SQuAD contexts (relation head): a sentence against
  itself edited -- negation inserted or removed, a name swapped for another of the same article, a number,
  month or year changed, two names exchanged (subject/object), an antonym -- is a contradiction; the sentence
  with a clause dropped or lightly reworded is entailed; another sentence of the same article is neutral.

Every source is split into halves by article (SQuAD title, RealTime QA document, FEVER evidence sentence, so a
contrast pair stays together): half A trains, half B is only reported on.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.evaluate.judge_edits import (
    YEAR,
    antonym,
    change_number,
    exchange_names,
    names_in,
    negate,
    paraphrase,
    swap_name,
)
from rag.models.judge import judge_text as with_title
from rag.text.sentences import split_sentences
from rag.text.tokens import content_terms

SEED = 27
ANSWERS, RELATION = "answers", "relation"
ENTAIL, CONTRADICT, NEUTRAL = 0, 1, 2  # relation label order, as the model's relation logits
SQUAD_PATH = "benchmarks/squad-v2/dev-v2.0.json"
QNLI_PATH = "training/qnli-dev/qnli_dev.jsonl"
FEVER_PATHS = (
    "training/fever-symmetric/fever_symmetric_v0.2_dev.jsonl",
    "training/fever-symmetric/fever_symmetric_v0.2_test.jsonl",
)
RTQA_CORPUS = "benchmarks/realtimeqa-2022-summer/corpus"


@dataclass(frozen=True)
class Pair:
    task: str  # ANSWERS or RELATION
    first: str  # the question or the claim
    text: str  # the sentence or quote, with its title
    label: int  # ANSWERS: 1/0; RELATION: ENTAIL/CONTRADICT/NEUTRAL
    source: str  # which recipe made it, for per-source figures
    group: str  # the article it came from: splits never cut one


def half(key: str) -> str:
    """The same split as rag/reader_train.py's title_half: "A" trains, "B" is held out for reporting."""
    return "A" if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 2 == 0 else "B"


def sentences_of(text: str) -> list[tuple[int, int, str]]:
    return [(s, e, " ".join(text[s:e].split())) for s, e in split_sentences(text)]


# ---------------------------------------------------------------- answers head: SQuAD


def changed_question(question: str, sentence: str, pool: list[str], rng: random.Random) -> str | None:
    """The question with a year or name the answer sentence carries changed to one it does not: unanswerable
    from that sentence, yet sharing nearly all its words."""
    years = [m for m in YEAR.finditer(question) if m.group(0) in sentence]
    if years:
        m = rng.choice(years)
        new = str(int(m.group(0)) + rng.choice([-7, -3, -2, -1, 1, 2, 4, 9]))
        return question[: m.start()] + new + question[m.end() :]
    names = [n for n in names_in(question) if n in sentence and question.find(n) > 0]
    others = [p for p in pool if p not in sentence and p not in question]
    if names and others:
        old = rng.choice(names)
        return question.replace(old, rng.choice(others), 1)
    return None


def squad_pairs(articles: list[dict], rng: random.Random) -> list[Pair]:
    pairs: list[Pair] = []
    for article in articles:
        title = article["title"].replace("_", " ")
        pool = names_in(" ".join(p["context"] for p in article["paragraphs"][:20]))
        for para in article["paragraphs"]:
            sents = sentences_of(para["context"])
            if len(sents) < 2:
                continue
            for qa in para["qas"]:
                q = " ".join(qa["question"].split())
                terms = content_terms(q)
                order = sorted(range(len(sents)), key=lambda i: (-len(terms & content_terms(sents[i][2])), i))
                group = article["title"]
                if qa.get("is_impossible") or not qa.get("answers"):
                    pairs.append(
                        Pair(ANSWERS, q, with_title(title, sents[order[0]][2]), 0, "squad_unanswerable", group)
                    )
                    continue
                start = qa["answers"][0]["answer_start"]
                pos = next((i for i, (s, e, _) in enumerate(sents) if s <= start < e), None)
                if pos is None:
                    continue
                hard = next(i for i in order if i != pos)
                pairs.append(Pair(ANSWERS, q, with_title(title, sents[pos][2]), 1, "squad_answer", group))
                pairs.append(Pair(ANSWERS, q, with_title(title, sents[hard][2]), 0, "squad_overlap", group))
                changed = changed_question(q, sents[pos][2], pool, rng)
                if changed:
                    pairs.append(Pair(ANSWERS, changed, with_title(title, sents[pos][2]), 0, "squad_changed", group))
    return pairs


def qnli_pairs(rows: list[dict], squad_title_of: dict[str, str]) -> list[Pair]:
    """Grouped by the SQuAD title the question comes from, or by the question itself when it is in none."""
    out = []
    for row in rows:
        q = " ".join(row["question"].split())
        group = squad_title_of.get(q, "qnli:" + q)
        out.append(Pair(ANSWERS, q, " ".join(row["sentence"].split()), int(row["label"]), "qnli", group))
    return out


# ---------------------------------------------------------------- relation head: FEVER


def fever_pairs(rows: list[dict], rng: random.Random) -> list[Pair]:
    out = []
    for row in rows:
        label = ENTAIL if row["label_text"] == "SUPPORTS" else CONTRADICT
        out.append(Pair(RELATION, row["claim"], row["evidence"], label, "fever", "fever:" + row["evidence"]))
    # A claim against another item's evidence says nothing about it; same group as the claim's own pair.
    for row in rng.sample(rows, len(rows) // 4):
        other = rng.choice(rows)
        if other["evidence"] != row["evidence"]:
            out.append(
                Pair(RELATION, row["claim"], other["evidence"], NEUTRAL, "fever_neutral", "fever:" + row["evidence"])
            )
    return out


# ---------------------------------------------------------------- relation head: rule-made pairs


EDITS: dict[str, Callable[..., str | None]] = {
    "negation": negate,
    "number": change_number,
    "role_swap": exchange_names,
    "antonym": antonym,
}


def rule_pairs(
    doc_sents: list[str],
    title: str,
    group: str,
    source: str,
    rng: random.Random,
    *,
    per_doc: int,
    date: str | None = None,
    minimal: bool = False,
) -> list[Pair]:
    """Up to `per_doc` relation pairs from one article's sentences, each edit kind tried in turn so every
    kind is present whatever the article offers."""
    usable = [s for s in doc_sents if 8 <= len(s.split()) <= 60]
    if len(usable) < 3:
        return []
    pool = names_in(" ".join(doc_sents))
    out: list[Pair] = []
    kinds = [
        "paraphrase",
        "negation",
        "neutral",
        "name_swap",
        "paraphrase",
        "number",
        "role_swap",
        "neutral",
        "antonym",
        "paraphrase",
        "negation",
        "name_swap",
    ]
    start = rng.randrange(len(kinds))  # rotated per article, so a small per_doc still sees every kind
    for kind in kinds[start:] + kinds[:start]:
        if len(out) >= per_doc:
            break
        s = rng.choice(usable)
        if kind == "neutral":
            other = max(
                (x for x in usable if x != s), key=lambda x: (len(content_terms(x) & content_terms(s)), rng.random())
            )
            claim = paraphrase(other, rng) or other
            out.append(Pair(RELATION, claim, with_title(title, s, date), NEUTRAL, f"{source}_neutral", group))
            continue
        if kind == "paraphrase":  # the quote itself when no rewording applies: a verbatim claim is entailed too
            claim = paraphrase(s, rng) or s
            out.append(Pair(RELATION, claim, with_title(title, s, date), ENTAIL, f"{source}_paraphrase", group))
            continue
        claim = swap_name(s, pool, rng) if kind == "name_swap" else EDITS[kind](s, rng)
        if claim and claim != s:
            # Half the time the claim is also shortened, so "shorter" never gives the entailment away.
            short = paraphrase(claim, rng) if rng.random() < 0.4 else None
            out.append(
                Pair(RELATION, short or claim, with_title(title, s, date), CONTRADICT, f"{source}_{kind}", group)
            )
            if minimal:  # the same premise with an entailed claim beside the edited one, as FEVER Symmetric pairs them
                out.append(
                    Pair(
                        RELATION,
                        paraphrase(s, rng) or s,
                        with_title(title, s, date),
                        ENTAIL,
                        f"{source}_paraphrase",
                        group,
                    )
                )
    return out


def read_rtqa_article(path: Path) -> tuple[str, str | None, list[str]]:
    """(title, published date, body sentences): a title line, header lines (By / Published / url), the body."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    title = lines[0] if lines and not lines[0].startswith(("By ", "Published ", "http")) else ""
    date = next((ln.split()[1] for ln in lines[:6] if ln.startswith("Published ") and len(ln.split()) > 1), None)
    body = [ln for ln in lines[1:] if ln and not ln.startswith(("By ", "Published ", "http")) and len(ln.split()) >= 6]
    return title, date, [s for para in body for _, _, s in sentences_of(para)]


# ---------------------------------------------------------------- the recipe


@dataclass
class Recipe:
    """Sizes per source; held-out halves are taken whole (capped) whatever the training sizes."""

    # Sized for `make judge` to train in about 5 minutes on 2 idle cores (docs/judge.md: cost and what it bought).
    squad_pairs: int = 1800
    qnli: int = 700
    rtqa_docs: int = 150
    squad_rule_paragraphs: int = 100
    per_doc: int = 8
    heldout_cap: int = 500
    minimal_pairs: bool = False  # each contradicting edit with an entailed claim on the same premise (experiment)
    seed: int = SEED


def build(shared: Path, recipe: Recipe) -> tuple[list[Pair], dict[str, list[Pair]]]:
    """(training pairs, held-out pairs by set name), deterministic for a recipe and ../shared's files."""
    rng = random.Random(recipe.seed)
    squad = json.loads((shared / SQUAD_PATH).read_text())["data"]
    sq = squad_pairs(squad, rng)
    title_of = {" ".join(qa["question"].split()): a["title"] for a in squad for p in a["paragraphs"] for qa in p["qas"]}
    qn = qnli_pairs([json.loads(ln) for ln in (shared / QNLI_PATH).read_text().splitlines() if ln.strip()], title_of)
    fever_rows = [
        json.loads(ln) for path in FEVER_PATHS for ln in (shared / path).read_text().splitlines() if ln.strip()
    ]
    fv = fever_pairs(fever_rows, rng)

    rules: list[Pair] = []
    docs = sorted((shared / RTQA_CORPUS).glob("*.txt"))
    for path in docs:
        title, date, sents = read_rtqa_article(path)
        # Half the premises carry the article's date, as the runtime may pass it; it never decides a label.
        rules += rule_pairs(
            sents,
            title,
            path.stem,
            "rtqa",
            rng,
            per_doc=recipe.per_doc,
            date=date if rng.random() < 0.5 else None,
            minimal=recipe.minimal_pairs,
        )
    for article in squad:
        title = article["title"].replace("_", " ")
        for para in article["paragraphs"][:12]:
            rules += rule_pairs(
                [s for _, _, s in sentences_of(para["context"])],
                title,
                article["title"],
                "squadrule",
                rng,
                per_doc=3,
                minimal=recipe.minimal_pairs,
            )

    def split(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
        return [p for p in pairs if half(p.group) == "A"], [p for p in pairs if half(p.group) == "B"]

    def cap(pairs: list[Pair], n: int) -> list[Pair]:
        return rng.sample(pairs, n) if len(pairs) > n else pairs

    (sq_a, sq_b), (qn_a, qn_b), (fv_a, fv_b), (ru_a, ru_b) = split(sq), split(qn), split(fv), split(rules)
    # QNLI items from no SQuAD article split on the question: any half is fair, none is in a held-out article.
    rt_a = [p for p in ru_a if p.source.startswith("rtqa")]
    sr_a = [p for p in ru_a if p.source.startswith("squadrule")]
    train = (
        cap(sq_a, recipe.squad_pairs)
        + cap(qn_a, recipe.qnli)
        + fv_a
        + cap(rt_a, recipe.rtqa_docs * recipe.per_doc)
        + cap(sr_a, recipe.squad_rule_paragraphs * 3)
    )
    rng.shuffle(train)
    heldout = {
        "squad_B": cap(sq_b, recipe.heldout_cap),
        "qnli_B": cap([p for p in qn_b if not p.group.startswith("qnli:")], recipe.heldout_cap),
        "fever_B": fv_b,
        "rules_B": cap(ru_b, recipe.heldout_cap),
    }
    return train, heldout


def recipe_hash(recipe: Recipe) -> str:
    """Names the recipe and this file's code, so a changed rule is a new model, never a stale cache hit."""
    digest = hashlib.sha1(Path(__file__).read_bytes())
    digest.update(json.dumps(recipe.__dict__, sort_keys=True).encode())
    return digest.hexdigest()[:12]
