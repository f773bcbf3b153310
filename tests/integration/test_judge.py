"""The real judge (built by `make judge`) on issue 27's cases: a negated, a renamed and a speaker-swapped claim
against the quotes the citation verifier once passed. Skipped, saying so, where the judge is not built."""

from __future__ import annotations

import pytest

from rag.core.errors import ModelMissingError
from rag.models.judge import CONTRADICTED, SUPPORTED, Judge, judge_path, judge_text, load_judge, verdict

try:
    JUDGE_PATH = judge_path()
except ModelMissingError as exc:
    pytest.skip(f"the judge is not built ({exc})", allow_module_level=True)

TITLE = "NATO debates ways to boost ties with Ukraine as war against Russian invasion drags on"
COUNCIL = (
    "The NATO-Ukraine Commission, which will meet later Thursday, is set to be upgraded to a NATO-Ukraine Council, "
    "giving the country an equal seat at the table with the 31 allies."
)
CONSENSUS = (
    "NATO Secretary-General Jens Stoltenberg has said there is no consensus for the country to join while it is at war "
    "with Russia."
)


@pytest.fixture(scope="module")
def judge():
    return load_judge(JUDGE_PATH, threads=2)


def _verdict(judge: Judge, claim: str, *quotes: str) -> str:
    return verdict(judge.relation(claim, [judge_text(TITLE, q) for q in quotes]))[0]


# The phase-1 judge tells related from unrelated but not yet entailed from contradicted: it calls every close
# quote a contradiction (docs/judge.md), so the supported cases are known failures and the contradicted ones
# pass for that reason as much as for reading the edit. Strict: a judge that reads them must drop the marks.
NOT_YET = pytest.mark.xfail(
    reason="phase-1 judge does not separate entail from contradict (docs/judge.md)", strict=True
)

# Measured at contradict 0.47-0.54 across the phase-1 builds: on either side of the 0.5 line.
NEAR_LINE = pytest.mark.xfail(reason="phase-1 judge puts this negation at the 0.5 line (docs/judge.md)", strict=False)


@pytest.mark.parametrize(
    ("claim", "quote", "expected"),
    [
        pytest.param(
            "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council.",
            COUNCIL,
            SUPPORTED,
            marks=NOT_YET,
        ),
        pytest.param(
            "The NATO-Ukraine Commission is not set to be upgraded to a NATO-Ukraine Council.",
            COUNCIL,
            CONTRADICTED,
            marks=NEAR_LINE,
        ),
        ("The NATO-Russia Commission is set to be upgraded to a council.", COUNCIL, CONTRADICTED),
        pytest.param(
            "Stoltenberg has said there is no consensus for Ukraine to join while it is at war with Russia.",
            CONSENSUS,
            SUPPORTED,
            marks=NOT_YET,
        ),
        (
            "Kuleba has said there is no consensus for Ukraine to join while it is at war with Russia.",
            CONSENSUS,
            CONTRADICTED,
        ),
    ],
)
def test_issue_27_cases(judge, claim, quote, expected):
    assert _verdict(judge, claim, quote) == expected


def test_answers_head_prefers_the_sentence_that_answers(judge):
    p = judge.answers(
        "What will the NATO-Ukraine Commission be upgraded to?",
        [judge_text(TITLE, COUNCIL), judge_text(TITLE, CONSENSUS)],
    )
    assert p[0] > 0.5 > p[1]


def test_unrelated_quote_is_not_found(judge):
    assert (
        _verdict(judge, "NATO defense ministers agreed to send fighter jets to Ukraine.", COUNCIL, CONSENSUS)
        == "not_found"
    )


def test_a_missing_folder_names_the_make_target(tmp_path):
    with pytest.raises(ModelMissingError, match="make judge"):
        load_judge(tmp_path / "nothing")
