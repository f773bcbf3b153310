"""The trained reader (models/reader) tells a sentence that answers from one that only shares the words."""

from __future__ import annotations

from rag.reader import reader_input


def test_reader_prefers_the_sentence_that_answers_over_one_that_shares_its_words(real_reader):
    question = "In which year did the alliance invite Finland to join?"
    answers = reader_input("NATO enlargement", "The alliance invited Finland to join in 2022, after Russia's invasion of Ukraine.")
    lookalike = reader_input("NATO enlargement", "Finland has long debated whether the alliance should invite new members to join.")
    p_answer, p_lookalike = real_reader.score(question, [answers, lookalike])
    assert p_answer > 0.5 > p_lookalike


def test_reader_reads_an_unanswerable_twist_of_the_question_as_unanswered(real_reader):
    # SQuAD 2.0's kind of negative: the sentence answers a nearby question, not this one.
    sentence = reader_input("Normans", "In 1066 the Normans, led by William the Conqueror, conquered England at the Battle of Hastings.")
    right, twisted = real_reader.score("Who led the Normans when they conquered England?", [sentence]), real_reader.score("Who led the Normans when they conquered Sicily?", [sentence])
    assert right[0] > 0.5 and twisted[0] < right[0]


def test_pipeline_with_the_reader_uses_the_decision_fitted_on_it(real_pipeline):
    assert real_pipeline.reader is not None and real_pipeline.decision.needs_reader
    found = real_pipeline.gather("What was decided about the NATO-Ukraine Council?", mode="extractive", top_k=None, since=None, until=None,
                                 as_of=__import__("datetime").date(2023, 7, 20))
    assert found.decision.features["reader_best"] > 0.0
    assert any(s.reader is not None for s in found.evidence.sentences)
