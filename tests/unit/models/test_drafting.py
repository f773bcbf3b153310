"""Drafting only with a model whose drafts earn their time: the measured record, the policy, and the quoting path."""

from __future__ import annotations

import json

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import BadInputError
from rag.ingest.indexing import index_paths
from rag.models.drafting import (
    RECORD_FILE,
    DraftPolicy,
    GenerationRecord,
    draft_policy,
    generator_id,
    load_records,
    save_record,
)
from tests.fakes import ScriptedGenerator, strength_rule

COUNCIL = (
    "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council, giving the country an equal seat at "
    "the table with the 31 allies."
)
QUESTION = "What was decided about the NATO-Ukraine Council?"


@pytest.fixture
def gguf(tmp_path, settings):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 96)
    return settings.model_copy(update={"gguf_path": path, "generator_backend": "llama_cpp"})


def record(model: str, survival: float) -> GenerationRecord:
    return GenerationRecord(model=model, survival=survival, drafted=20, questions="q.jsonl", measured="2026-11-29")


def test_the_model_is_known_by_file_name_and_size_or_server_model(gguf):
    assert generator_id(gguf) == "gguf:tiny.gguf:100"
    assert (
        generator_id(gguf.model_copy(update={"generator_backend": "openai", "openai_model": "qwen"})) == "openai:qwen"
    )
    assert generator_id(gguf.model_copy(update={"gguf_path": gguf.gguf_path.with_name("gone.gguf")})) is None


def test_a_model_never_measured_drafts(gguf):
    assert draft_policy(gguf) == DraftPolicy(draft=True)


def test_a_model_whose_drafts_mostly_fail_quotes_and_says_why(gguf):
    save_record(gguf.index_dir, record("gguf:tiny.gguf:100", 0.4))
    policy = draft_policy(gguf)
    assert not policy.draft and "40%" in policy.reason and "RAG_GENERATION_MIN_SURVIVAL=60%" in policy.reason
    assert draft_policy(gguf.model_copy(update={"generation_min_survival": 0.3})).draft  # the threshold is the user's
    assert draft_policy(gguf.model_copy(update={"generation_min_survival": 0.0})).draft


def test_a_model_whose_drafts_survive_but_are_right_less_often_than_quotes_quotes(gguf):
    rec = record("gguf:tiny.gguf:100", 0.61).model_copy(
        update={"compared": 18, "drafted_right": 16, "quoted_right": 18}
    )
    save_record(gguf.index_dir, rec)
    policy = draft_policy(gguf)
    assert (
        not policy.draft
        and "right in 16 of 18 questions" in policy.reason
        and "quoting was right in 18" in policy.reason
    )
    save_record(gguf.index_dir, rec.model_copy(update={"drafted_right": 18}))
    assert draft_policy(gguf).draft  # as good as quoting: the model may reword
    assert draft_policy(gguf.model_copy(update={"generation_min_survival": 0.0})).draft


def test_the_index_record_overrides_the_packaged_one_and_a_rerun_replaces_its_own(gguf):
    save_record(gguf.index_dir, record("gguf:tiny.gguf:100", 0.4))
    save_record(gguf.index_dir, record("gguf:tiny.gguf:100", 0.8))
    save_record(gguf.index_dir, record("openai:other", 0.1))
    rows = json.loads((gguf.index_dir / RECORD_FILE).read_text())
    assert len(rows) == 2
    assert load_records(gguf.index_dir)["gguf:tiny.gguf:100"].survival == 0.8
    assert draft_policy(gguf).draft


def test_a_broken_record_file_is_a_clear_error(gguf):
    gguf.index_dir.mkdir(parents=True, exist_ok=True)
    (gguf.index_dir / RECORD_FILE).write_text("{not json")
    with pytest.raises(BadInputError, match="generation records"):
        draft_policy(gguf)


def test_the_packaged_records_load():
    for model, rec in load_records(None).items():
        assert model == rec.model and 0.0 <= rec.survival <= 1.0 and rec.drafted > 0


def test_quoting_policy_skips_the_model_and_quotes_the_evidence(settings, hashing_embedder, prompts, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    loose = settings.model_copy(update={"support_threshold": 0.5})
    gen = ScriptedGenerator(COUNCIL + " [1]")
    pipeline = Pipeline(loose, index, hashing_embedder, gen, prompts, strength_rule())
    drafted = pipeline.ask(QUESTION)
    assert gen.calls and drafted.written_by == "model"

    quiet = ScriptedGenerator(COUNCIL + " [1]")
    pipeline = Pipeline(loose, index, hashing_embedder, quiet, prompts, strength_rule())
    pipeline.drafts = DraftPolicy(draft=False, reason="measured")
    quoted = pipeline.ask(QUESTION)
    assert not quiet.calls, "the model was called although its drafts were measured not to survive"
    assert quoted.quoted_because == "drafts_measured_weak" and quoted.citations and not quoted.abstained
    assert all(s.supported for s in quoted.sentences)


def test_eval_records_the_share_of_drafts_that_survived(tmp_path, gguf, hashing_embedder, prompts, corpus_copy):
    from rag.evaluate.harness import run_eval
    from tests.unit.evaluate.test_evaluate import write_lines

    index, _ = index_paths(gguf, hashing_embedder, [corpus_copy])
    loose = gguf.model_copy(update={"support_threshold": 0.5})
    # The first draft is supported, the second says nothing the articles hold and is replaced by a quote.
    gen = ScriptedGenerator(COUNCIL + " [1]", "Penguins chair the council from Antarctica every winter. [1]")
    pipeline = Pipeline(loose, index, hashing_embedder, gen, prompts, strength_rule())
    pipeline.drafts = DraftPolicy(draft=False, reason="an earlier record")  # measuring drafts regardless
    questions = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": "a",
                "question": QUESTION,
                "must_include": [["council"]],
                "gold_docs": ["001_d33884d0ecc97606"],
                "type": "single",
            },
            {
                "id": "b",
                "question": "What seat does the NATO-Ukraine Council give the country?",
                "must_include": [["seat"]],
                "gold_docs": ["001_d33884d0ecc97606"],
                "type": "single",
            },
        ],
    )
    outcome = run_eval(
        gguf, questions, out_dir=tmp_path / "out", mode="generate", pipeline=pipeline, record_generation=True
    )
    assert len(gen.calls) == 2
    saved = load_records(gguf.index_dir)["gguf:tiny.gguf:100"]
    assert saved.drafted == 2 and saved.survival == 0.5 and saved.questions.endswith("/q.jsonl")
    # Both asked again by quoting, to compare: the drafted run's final answers (a quote where the draft failed).
    assert (saved.compared, saved.drafted_right, saved.quoted_right) == (2, 2, 2)
    assert len(gen.calls) == 2  # the comparison run called no model
    assert outcome.report["run"]["generation_record"] == str(gguf.index_dir / RECORD_FILE)
    with pytest.raises(BadInputError, match="--mode generate"):
        run_eval(
            gguf, questions, out_dir=tmp_path / "out2", mode="extractive", pipeline=pipeline, record_generation=True
        )
