"""`rag check "CLAIM"`: the archive's verdict on a claim, supported / contradicted / not_found, with the quotes
that decide it. Mounted on rag.cli.main's app."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from rag.cli.common import AsOfOpt, JsonOpt, SinceOpt, TopKOpt, UntilOpt, err, out, settings_of

if TYPE_CHECKING:
    from rag.answer.claims import ClaimCheck

VERDICT_STYLE = {"supported": "bold green", "contradicted": "bold red", "not_found": "bold yellow"}
VERDICT_TEXT = {
    "supported": "supported: the archive says this",
    "contradicted": "contradicted: the archive says otherwise",
    "not_found": "not found: no checked sentence of the archive supports or contradicts this",
}


def print_check(check: ClaimCheck) -> None:
    if check.note:
        err.print(f"[yellow]note:[/] {escape(check.note)}")
    out.print(f"[{VERDICT_STYLE[check.verdict]}]{VERDICT_TEXT[check.verdict]}[/]")
    for n, c in enumerate(check.citations, start=1):
        out.print(
            f" [{n}] {c.stance} [cyan]{escape(c.title or c.doc_id)}[/] — {escape(c.source or 'unknown source')}, "
            f"{c.date or 'undated'}  ({escape(c.doc_id)} chars {c.span[0]}-{c.span[1]})"
        )
        out.print(f'     "{escape(c.quote)}"')
    judge = f"judge {check.judge}" if check.judge else "lexical checks only"
    out.print(f"[dim]checked against {check.candidates} sentences, {judge}, as of {check.as_of}[/]")


def check_cmd(
    ctx: typer.Context,
    claim: str,
    top_k: TopKOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a claim against the archive: supported, contradicted or not found, with the deciding quotes."""
    from rag.answer.pipeline import Pipeline, check_request

    settings = settings_of(ctx)
    check_request(settings, claim, top_k=top_k, since=since, until=until, as_of=as_of)  # before any model loads
    pipeline = Pipeline.from_settings(settings, with_generator=False)
    check = pipeline.check(claim, top_k=top_k, since=since, until=until, as_of=as_of)
    if as_json:
        print(check.model_dump_json(indent=2))
    else:
        print_check(check)
