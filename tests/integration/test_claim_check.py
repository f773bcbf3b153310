"""The claim check with real models on the bundled NATO articles: the MiniLM embedder, FAISS and the judge
(models/judge from `make judge`, or RAG_JUDGE_PATH). Skipped, saying why, when no judge is built; the lexical
path is checked with the real embedder either way."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.errors import ModelMissingError
from rag.models.judge import load_judge
from rag.models.prompts import PromptSet

# Claims of data/claims/claims_dev.jsonl (the split the thresholds were tuned on) about the bundled articles.
SUPPORTED = "In 2008 NATO agreed that Ukraine would one day join the organization."
CONTRADICTED = "The NATO-Ukraine Commission is not set to be upgraded to a NATO-Ukraine Council."
NOT_FOUND = "NATO defense ministers agreed to send fighter jets to Ukraine."
AS_OF = "2023-07-01"


@pytest.fixture(scope="module")
def judge():
    try:
        return load_judge(threads=1)
    except ModelMissingError as exc:
        pytest.skip(f"no judge model: {exc}")


@pytest.fixture(scope="module")
def pipeline(real_settings, real_index, real_embedder) -> Pipeline:
    return Pipeline(real_settings, real_index, real_embedder, None, PromptSet.load())


@pytest.mark.parametrize(
    ("claim", "verdict"), [(SUPPORTED, "supported"), (CONTRADICTED, "contradicted"), (NOT_FOUND, "not_found")]
)
def test_judged_verdicts_on_the_nato_articles(pipeline, judge, claim, verdict):
    pipeline.use_judge(judge)
    check = pipeline.check(claim, as_of=AS_OF)
    assert check.verdict == verdict, check.model_dump_json(indent=2)
    assert check.judge == judge.name and check.note is None and check.candidates > 1
    for c in check.citations:
        assert c.doc_id.startswith("00") and c.span[1] > c.span[0] and c.entail is not None


def test_lexical_only_says_so(pipeline):
    pipeline.use_judge(None, "no judge in this test")
    check = pipeline.check(CONTRADICTED, as_of=AS_OF)
    assert check.judge is None and check.note == "no judge in this test"
    assert check.verdict == "contradicted" and check.citations[0].doc_id == "001_d33884d0ecc97606"
