"""One rule for dates (issue 25, items 4 and 6): the as-of date is today's UTC date, as feed dates are UTC dates;
an article dated after today is kept (a clock or zone difference, not a later report); an as-of date near
year 1 is answered, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from rag.search.retriever import Retriever
from rag.text.timeframe import parse_as_of, resolve, utc_today
from tests.conftest import ROOT
from tests.fakes import ScriptedGenerator, strength_rule

TUNNEL = (
    "Lowmere harbour tunnel approved\nPublished {day}\n\n"
    "The Lowmere harbour tunnel will cost 240 million pounds, according to the budget office. The council approved "
    "the plan on Thursday after a long debate, and the work takes four years.\n"
)


def _zone_off_utc_now() -> str:
    """A zone whose calendar date differs from UTC's right now: one of UTC-11 and UTC+14 always does."""
    now = datetime.now(UTC)
    for name, hours in (("Pacific/Pago_Pago", -11), ("Pacific/Kiritimati", 14)):
        if (now + timedelta(hours=hours)).date() != now.date():
            return name
    raise AssertionError("unreachable: the two zones are 25 hours apart")


def test_the_default_as_of_date_is_the_utc_date_whatever_the_servers_zone():
    zone = _zone_off_utc_now()
    code = "from rag.text.timeframe import parse_as_of; print(parse_as_of(None)[0].isoformat())"
    env = {**os.environ, "TZ": zone, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == datetime.now(UTC).date().isoformat() == utc_today().isoformat(), zone
    assert parse_as_of(None) == (utc_today(), False)


def _pipeline(tmp_path: Path, settings, embedder, prompts, day: str) -> Pipeline:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "tunnel.txt").write_text(TUNNEL.format(day=day), encoding="utf-8")
    index, _ = index_paths(settings, embedder, [corpus])
    return Pipeline(settings, index, embedder, ScriptedGenerator("x"), prompts, strength_rule())


def test_an_article_dated_after_today_is_not_why_a_question_is_refused(tmp_path, settings, hashing_embedder, prompts):
    """Dated 2099 (or tomorrow in UTC while the server's zone is still on yesterday): with no as-of date given,
    the article was left out of retrieval and the question refused as if nothing were relevant."""
    pipeline = _pipeline(tmp_path, settings, hashing_embedder, prompts, "2099-03-04")
    for question in ("How much will the Lowmere harbour tunnel cost?", "What is the latest on the harbour tunnel?"):
        answer = pipeline.ask(question, mode="extractive")
        assert not answer.abstained, (question, answer.abstain_reason)
        assert "240 million" in answer.text
    # An as-of date in the past still leaves later articles out: that is what asking "as of" a day means.
    past = pipeline.ask("How much will the Lowmere harbour tunnel cost?", mode="extractive", as_of="2024-01-01")
    assert past.abstained and not past.sources


def test_a_feed_date_converted_to_utc_is_inside_the_default_as_of(
    tmp_path, settings, hashing_embedder, prompts, monkeypatch
):
    # "Fri, 04 Dec 2026 21:30 -0500" is stored as 2026-12-05, the UTC date; in a zone whose date is not UTC's,
    # the local date as as-of left the newest article out ("The articles don't say").
    stored = datetime.now(timezone(timedelta(hours=-5))).astimezone(UTC).date().isoformat()
    pipeline = _pipeline(tmp_path, settings, hashing_embedder, prompts, stored)
    monkeypatch.setenv("TZ", _zone_off_utc_now())
    time.tzset()
    try:
        answer = pipeline.ask("How much will the Lowmere harbour tunnel cost?", mode="extractive")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert not answer.abstained and "240 million" in answer.text


def test_an_as_of_date_near_year_one_is_answered_not_a_crash(tmp_path, settings, hashing_embedder, prompts):
    for question in ("What did NATO decide this week?", "What is the latest on the tunnel?", "Tunnel cost?"):
        frame = resolve(question, date(1, 1, 3))
        assert frame.window is None or frame.window[0] == date.min
    pipeline = _pipeline(tmp_path, settings, hashing_embedder, prompts, "2024-03-04")
    answer = pipeline.ask("What did the council decide this week?", mode="extractive", as_of="0001-01-03")
    assert answer.abstained and answer.as_of == "0001-01-03"
    retriever = Retriever(pipeline.index, hashing_embedder, settings.model_copy(update={"recent_days": 400}))
    assert retriever.search("latest tunnel", frame=resolve("latest tunnel", date(1, 1, 3))) == []


def test_the_api_answers_a_year_one_as_of_without_a_500(tmp_path, settings, hashing_embedder, prompts):
    from fastapi.testclient import TestClient

    from api.app import create_app

    pipeline = _pipeline(tmp_path, settings, hashing_embedder, prompts, "2024-03-04")
    with TestClient(create_app(settings, pipeline)) as client:
        body = {"question": "What did NATO decide this week?", "as_of": "0001-01-03", "mode": "extractive"}
        response = client.post("/v1/ask", json=body)
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["abstained"] is True
