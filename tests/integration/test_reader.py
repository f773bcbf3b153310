"""The reader: its training code end to end on a small SQuAD-shaped file (always), and what the full
reader `make reader` trains can tell apart (where it was built)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from rag.core.errors import ModelMissingError
from rag.evaluate.train_reader import main as train_main
from rag.evaluate.train_reader import title_half
from rag.models.prompts import PromptSet
from rag.models.reader import ONNX_FILE, OnnxReader, load_reader, reader_input


def _squad_file(path):
    """Two articles on split A, each with an answerable and an unanswerable question."""
    titles = [t for t in (f"Article_{i}" for i in range(40)) if title_half(t) == "A"][:2]
    context = (
        "The bridge opened in 1932 after six years of work. It was designed by John Bradfield. Trams crossed it until "
        "1961."
    )
    data = {
        "data": [
            {
                "title": t,
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": f"{t}-a",
                                "question": "Who designed the bridge?",
                                "is_impossible": False,
                                "answers": [{"text": "John Bradfield", "answer_start": context.index("John")}],
                            },
                            {
                                "id": f"{t}-u",
                                "question": "Who painted the bridge?",
                                "is_impossible": True,
                                "answers": [],
                            },
                        ],
                    }
                ],
            }
            for t in titles
        ]
    }
    path.write_text(json.dumps(data))
    return path


def test_reader_training_writes_a_folder_the_pipeline_loads_and_reads_with(
    tmp_path, real_settings, real_index, real_embedder
):
    from rag.answer.pipeline import Pipeline

    out = tmp_path / "reader"
    assert (
        train_main(
            [
                "--squad",
                str(_squad_file(tmp_path / "squad.json")),
                "--out",
                str(out),
                "--questions",
                "4",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (out / "reader.json").is_file() and not (tmp_path / "reader.tmp").exists()
    settings = real_settings.model_copy(update={"use_reader": True, "reader_path": out})
    reader = load_reader(settings)
    assert isinstance(reader, OnnxReader) and (out / ONNX_FILE).is_file()  # `make reader` exported it
    sentences = ["Bridge. It was designed by John Bradfield.", "Bridge. Trams crossed it until 1961. " * 30]
    scores = reader.score("Who designed the bridge?", sentences)
    assert len(scores) == 2 and all(0.0 < p < 1.0 for p in scores)
    # The ONNX scores are the trained torch model's, read the way training read them (the long one truncated).
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    enc = tokenizer(
        ["Who designed the bridge?"] * 2,
        sentences,
        truncation="only_second",
        max_length=reader.max_length,
        padding=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        expected = torch.sigmoid(model(**enc).logits.squeeze(-1)).tolist()
    assert max(abs(a - b) for a, b in zip(scores, expected)) < 1e-4
    # A folder trained before the export existed is exported on first use.
    (out / ONNX_FILE).unlink()
    assert load_reader(settings).score("Who designed the bridge?", sentences[:1])[0] == pytest.approx(
        scores[0], abs=1e-5
    )
    assert (out / ONNX_FILE).is_file()
    pipeline = Pipeline(settings, real_index, real_embedder, None, PromptSet.load(), reader=reader)
    assert pipeline.decision.needs_reader  # the packaged decision fitted on the reader's scores
    found = pipeline.gather(
        "What was decided about the NATO-Ukraine Council?",
        mode="extractive",
        top_k=None,
        since=None,
        until=None,
        as_of=date(2023, 7, 20),
    )
    assert 0.0 < found.decision.features["reader_best"] < 1.0


def test_asking_for_the_reader_without_one_is_a_clear_error(tmp_path, real_settings):
    with pytest.raises(ModelMissingError, match="make reader"):
        load_reader(real_settings.model_copy(update={"use_reader": True, "reader_default_path": tmp_path / "none"}))
    assert load_reader(real_settings.model_copy(update={"use_reader": False})) is None


def test_reader_prefers_the_sentence_that_answers_over_one_that_shares_its_words(real_reader):
    question = "In which year did the alliance invite Finland to join?"
    answers = reader_input(
        "NATO enlargement", "The alliance invited Finland to join in 2022, after Russia's invasion of Ukraine."
    )
    lookalike = reader_input(
        "NATO enlargement", "Finland has long debated whether the alliance should invite new members to join."
    )
    p_answer, p_lookalike = real_reader.score(question, [answers, lookalike])
    assert p_answer > p_lookalike
    designer, trams = real_reader.score(
        "Who designed the Sydney Harbour Bridge?",
        [
            reader_input("Sydney Harbour Bridge", "It was designed by John Bradfield."),
            reader_input("Sydney Harbour Bridge", "Trams crossed it until 1961."),
        ],
    )
    assert designer > trams


@pytest.mark.xfail(
    strict=True,
    reason="known limit: one epoch on 9,825 pairs does not see a one-word twist (0.446 vs 0.438); docs/calibration.md",
)
def test_reader_reads_an_unanswerable_twist_of_the_question_as_unanswered(real_reader):
    # SQuAD 2.0's kind of negative: the sentence answers a nearby question, not this one.
    sentence = reader_input(
        "Normans", "In 1066 the Normans, led by William the Conqueror, conquered England at the Battle of Hastings."
    )
    right, twisted = (
        real_reader.score("Who led the Normans when they conquered England?", [sentence]),
        real_reader.score("Who led the Normans when they conquered Sicily?", [sentence]),
    )
    assert right[0] > 0.5 and twisted[0] < right[0] - 0.2
