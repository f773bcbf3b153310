"""Questions and articles in one typographic form (issue 25, item 9): an en dash, a curly apostrophe or a ligature
does not change what matches or how confident the answer is."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.ingest.corpus import article_from_bytes
from rag.ingest.indexing import index_paths
from rag.text.normalise import normalise_text
from tests.fakes import ScriptedGenerator, strength_rule


@pytest.mark.parametrize(
    "typed, normal",
    [
        ("NATO\u2013Ukraine Council", "NATO-Ukraine Council"),
        ("NATO\u2014Ukraine", "NATO-Ukraine"),
        ("2022\u20132023 season", "2022-2023 season"),
        ("a deal \u2014 for now", "a deal \u2014 for now"),  # a spaced dash is punctuation, kept
        ("Ukraine\u2019s \u201cbid\u201d", "Ukraine's \u201cbid\u201d"),  # double quotes kept: they mark quotations
        ("\ufb01nal \uff2e\uff21\uff34\uff2f", "final NATO"),  # ligature, full-width letters
        ("co\u00adoperation", "cooperation"),
        ("\u22125 degrees", "-5 degrees"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),  # ZWNJ kept
    ],
)
def test_normal_form(typed, normal):
    assert normalise_text(typed) == normal


def test_an_article_is_stored_in_the_normal_form():
    raw = (
        "Allies agree a NATO\u2013Ukraine Council\n\nThe alliance\u2019s leaders agreed a NATO\u2013Ukraine Council.\n"
    )
    article = article_from_bytes("t", "t.txt", raw.encode())
    assert "NATO-Ukraine Council" in article.text and "alliance's" in article.text and "\u2013" not in article.text


@pytest.fixture
def pipeline(settings, hashing_embedder, prompts, corpus_copy) -> Pipeline:
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    return Pipeline(settings, index, hashing_embedder, ScriptedGenerator("x"), prompts, strength_rule())


def test_an_en_dash_or_curly_quote_in_the_question_answers_as_the_hyphen_does(pipeline):
    plain = pipeline.ask("What was decided about the NATO-Ukraine Council?", mode="extractive")
    for typed in (
        "What was decided about the NATO\u2013Ukraine Council?",
        "What was decided about the NATO\u2014Ukraine Council?",
    ):
        fancy = pipeline.ask(typed, mode="extractive")
        assert fancy.confidence == plain.confidence and fancy.text == plain.text, typed
    apostrophe = pipeline.ask("What is Ukraine\u2019s bid to join NATO?", mode="extractive")
    straight = pipeline.ask("What is Ukraine's bid to join NATO?", mode="extractive")
    assert apostrophe.confidence == straight.confidence and apostrophe.text == straight.text


def test_an_article_typed_with_en_dashes_matches_a_hyphenated_question(tmp_path, settings, hashing_embedder, prompts):
    scores = {}
    for name, dash in (("hyphen", "-"), ("endash", "\u2013")):
        corpus = tmp_path / name
        corpus.mkdir()
        text = (
            f"Allies upgrade ties\nPublished 2023-07-11\n\nLeaders agreed to create a NATO{dash}Ukraine Council in "
            f"Vilnius, giving Ukraine{chr(0x2019) if name == 'endash' else chr(39)}s government an equal seat.\n"
        )
        (corpus / "council.txt").write_text(text, encoding="utf-8")
        s = settings.model_copy(update={"index_dir": tmp_path / f"index-{name}"})
        index, _ = index_paths(s, hashing_embedder, [corpus])
        p = Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), prompts, strength_rule())
        answer = p.ask("What did leaders agree about the NATO-Ukraine Council?", mode="extractive")
        scores[name] = (answer.confidence, answer.text)
    assert scores["endash"] == scores["hyphen"]
