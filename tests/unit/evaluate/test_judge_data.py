"""The judge's data recipe: deterministic for a seed, its edits really edit, and its halves never share an article."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rag.evaluate import judge_data as jd

COUNCIL = (
    "The NATO-Ukraine Commission, which will meet later Thursday, is set to be upgraded to a NATO-Ukraine Council, "
    "giving the country an equal seat at the table with the 31 allies."
)


def _shared(root: Path) -> Path:
    """A tiny ../shared with every file the recipe reads, in the real layouts."""
    context = (
        "The bridge opened in 1932 after six years of work. It was designed by John Bradfield in Sydney. Trams crossed "
        "it until 1961, when Harbour Trust closed the line."
    )
    articles = []
    for i in range(8):
        title = f"Article_{i}"
        qas = [
            {
                "id": f"{i}a",
                "question": "Who designed the bridge in Sydney?",
                "is_impossible": False,
                "answers": [{"text": "John Bradfield", "answer_start": context.index("John")}],
            },
            {
                "id": f"{i}y",
                "question": "When did the bridge open in 1932?",
                "is_impossible": False,
                "answers": [{"text": "1932", "answer_start": context.index("1932")}],
            },
            {"id": f"{i}u", "question": "Who painted the bridge?", "is_impossible": True, "answers": []},
        ]
        articles.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    (root / "benchmarks/squad-v2").mkdir(parents=True)
    (root / jd.SQUAD_PATH).write_text(json.dumps({"data": articles}))
    (root / "training/qnli-dev").mkdir(parents=True)
    (root / jd.QNLI_PATH).write_text(
        "\n".join(
            json.dumps(
                {"id": k, "question": f"Question {k} about trams?", "sentence": "Trams crossed it.", "label": k % 2}
            )
            for k in range(10)
        )
    )
    (root / "training/fever-symmetric").mkdir(parents=True)
    for path in jd.FEVER_PATHS:
        rows = [
            {
                "id": k,
                "claim": f"Claim {k} is true.",
                "evidence": f"Evidence sentence number {k // 2}.",
                "label_text": "SUPPORTS" if k % 2 else "REFUTES",
                "label": k % 2,
            }
            for k in range(12)
        ]
        (root / path).write_text("\n".join(json.dumps(r) for r in rows))
    corpus = root / jd.RTQA_CORPUS
    corpus.mkdir(parents=True)
    for d in range(6):
        body = (
            f"Mayor Anna Berg said on Monday that the city of Oslo will not raise taxes in March {2020 + d}.\n"
            "The council approved a budget of 4,500 dollars, which is the largest in a decade, after a long debate.\n"
            "Critics in Bergen opposed the plan, and Peter Holm said it was a mistake for the region.\n"
            "Officials expect the new rules to increase revenue by 12 percent over the next three years."
        )
        (corpus / f"rtqa_{d:012x}.txt").write_text(
            f"Oslo budget story {d}\nBy Someone\nPublished 2022-06-1{d}\nhttps://example.com/{d}\n\n{body}\n"
        )
    return root


def test_recipe_is_deterministic_for_a_seed(tmp_path):
    shared = _shared(tmp_path)
    recipe = jd.Recipe(squad_pairs=50, qnli=10, rtqa_docs=6, squad_rule_paragraphs=8)
    first, held_first = jd.build(shared, recipe)
    second, held_second = jd.build(shared, recipe)
    assert first and first == second and held_first == held_second
    other, _ = jd.build(shared, jd.Recipe(squad_pairs=50, qnli=10, rtqa_docs=6, squad_rule_paragraphs=8, seed=5))
    assert other != first


def test_halves_are_disjoint_by_article(tmp_path):
    train, heldout = jd.build(
        _shared(tmp_path), jd.Recipe(squad_pairs=50, qnli=10, rtqa_docs=6, squad_rule_paragraphs=8)
    )
    train_groups = {p.group for p in train}
    held_groups = {p.group for pairs in heldout.values() for p in pairs}
    assert train_groups and held_groups and not train_groups & held_groups
    assert all(jd.half(g) == "A" for g in train_groups) and all(jd.half(g) == "B" for g in held_groups)
    # QNLI's held-out figure counts only items from held-out SQuAD articles, never from none.
    assert not any(p.group.startswith("qnli:") for p in heldout["qnli_B"])


@pytest.mark.parametrize("seed", range(5))
def test_contradicting_edits_change_the_sentence(seed):
    rng = random.Random(seed)
    pool = ["Jens Stoltenberg", "Dmytro Kuleba", "Vilnius", "Oslo", "NATO-Russia Council"]
    negated = jd.negate(COUNCIL, rng)
    assert negated and " not " in negated and negated != COUNCIL
    assert jd.negate("Ukraine is not a member.", rng) == "Ukraine is a member."
    number = jd.change_number(COUNCIL, rng)
    assert number and number != COUNCIL and "31" not in number
    assert jd.change_number("It opened in March.", rng) not in (None, "It opened in March.")
    swapped = jd.swap_name("Stoltenberg said Ukraine will join after the war in Vilnius.", pool, rng)
    assert swapped and swapped != "Stoltenberg said Ukraine will join after the war in Vilnius."
    exchanged = jd.exchange_names("The Colorado Avalanche defeated the Tampa Bay Lightning in Denver.", rng)
    assert exchanged and exchanged != "The Colorado Avalanche defeated the Tampa Bay Lightning in Denver."
    assert jd.antonym("Prices rose in May.", rng) == "Prices fell in May."


def test_paraphrase_drops_or_rewords_but_keeps_a_sentence():
    outs = {jd.paraphrase(COUNCIL, random.Random(s)) for s in range(20)} - {None}
    assert outs and all(o != COUNCIL and len(o.split()) >= 5 for o in outs)
    assert any(len(o) < len(COUNCIL) for o in outs)


def test_changed_question_is_unanswerable_by_the_answer_sentence():
    rng = random.Random(1)
    q = jd.changed_question("What happened to the bridge in 1932?", "The bridge opened in 1932.", ["Sydney"], rng)
    assert q and "1932" not in q and q.startswith("What happened to the bridge in ")
    assert jd.changed_question("What happened to the bridge?", "The bridge opened.", [], rng) is None
