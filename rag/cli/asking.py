"""`rag search`, `rag ask` and `rag chat`: questions from the command line, mounted on rag.cli.main's app."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rag.cli.common import AsOfOpt, JsonOpt, ModeOpt, SinceOpt, TopKOpt, UntilOpt, err, one_line, out, settings_of
from rag.core.errors import BadInputError, RagError

if TYPE_CHECKING:
    from rag.core.settings import Settings
    from rag.core.types import Answer, ScoredPassage


def _search_pipeline(settings: Settings):
    from rag.answer.pipeline import Pipeline

    return Pipeline.from_settings(settings, with_generator=False)


def search_cmd(
    ctx: typer.Context,
    query: str,
    top_k: TopKOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    method: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Show the passages retrieval ranks highest."""
    from rag.answer.pipeline import check_request

    if method not in ("hybrid", "dense", "bm25"):
        raise BadInputError(f"--method must be hybrid, dense or bm25, got {method!r}")
    check_request(settings_of(ctx), query, top_k=top_k, since=since, until=until)  # before the model load, not after
    results = _search_pipeline(settings_of(ctx)).search(query, top_k=top_k, since=since, until=until, method=method)
    if as_json:
        print(json.dumps([r.model_dump() for r in results], ensure_ascii=False, indent=2))
        return
    if not results:
        out.print("no passages found")
    for r in results:
        p = r.passage
        out.print(
            f"[bold]{r.rank}.[/] {escape(p.passage_id)}  score {r.score:.4f}  cos "
            f"{r.dense_score if r.dense_score is not None else float('nan'):.3f}  "
            f"[cyan]{escape(p.meta.title or p.doc_id)}[/] ({p.meta.date or 'undated'})"
        )
        out.print(f"   {escape(p.text[:300])}{'…' if len(p.text) > 300 else ''}")


def print_answer(answer: Answer, *, show_sources: bool = True) -> None:
    from rag.verify.citations import copies_line

    if answer.quoted_because == "no_generator":
        err.print(
            f"[yellow]note:[/] answered by quoting the articles, no generator: {escape(answer.generator_problem or '')}"
        )
    style = "yellow" if answer.abstained else "bold"
    out.print(f"[{style}]{escape(answer.text)}[/]")
    if not show_sources:
        return
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for c in answer.citations:
            out.print(
                f" [{c.number}] [cyan]{escape(c.title or c.doc_id)}[/] — {escape(c.source or 'unknown source')}, "
                f"{c.date or 'undated'}  ({escape(c.passage_id)})"
            )
            if c.also_in:
                out.print(f"     {escape(copies_line(c.also_in))}")
            for q in c.all_quotes():
                out.print(f'     "{escape(q.text)}"')
    elif answer.abstained:
        print_closest(answer.sources[:3])


def print_closest(sources: list[ScoredPassage]) -> None:
    if not sources:
        return
    out.print("\n[bold]Closest sources[/]")
    for r in sources:
        p = r.passage
        out.print(
            f" - [cyan]{escape(p.meta.title or p.doc_id)}[/] — {escape(p.meta.source or 'unknown source')}, "
            f"{p.meta.date or 'undated'}  ({escape(p.passage_id)})"
        )


def _ask_streaming(pipeline, question: str, **kwargs) -> Answer:
    """Show the model's draft while it generates; replace it with the verified answer when done."""
    from rich.live import Live
    from rich.text import Text

    if not out.is_terminal:
        return pipeline.ask(question, **kwargs)
    draft = Text(style="dim italic")
    with Live(draft, console=out, transient=True, refresh_per_second=12):
        return pipeline.ask(question, on_token=draft.append, **kwargs)


def ask_cmd(
    ctx: typer.Context,
    question: str,
    mode: ModeOpt = None,
    top_k: TopKOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer one question with verified citations (or say the articles don't say)."""
    from rag.answer.pipeline import Pipeline, check_request

    settings = settings_of(ctx)
    mode = mode or settings.mode
    check_request(
        settings, question, mode=mode, top_k=top_k, since=since, until=until, as_of=as_of
    )  # a typo must not cost a model load
    pipeline = Pipeline.from_settings(settings, with_generator=mode == "generate")
    kwargs = {"mode": mode, "top_k": top_k, "since": since, "until": until, "as_of": as_of}
    answer = pipeline.ask(question, **kwargs) if as_json else _ask_streaming(pipeline, question, **kwargs)
    if as_json:
        print(answer.model_dump_json(indent=2))
    else:
        print_answer(answer)


def chat_cmd(ctx: typer.Context, mode: ModeOpt = None, top_k: TopKOpt = None, as_of: AsOfOpt = None) -> None:
    """Interactive chat that keeps history. Commands: /sources, /reset, /quit."""
    from rag.answer.pipeline import Pipeline, check_request
    from rag.core.types import ChatTurn

    settings = settings_of(ctx)
    mode = mode or settings.mode
    check_request(settings, "chat", mode=mode, top_k=top_k, as_of=as_of)
    pipeline = Pipeline.from_settings(settings, with_generator=mode == "generate")
    history: list[ChatTurn] = []
    last = None
    out.print(
        "[dim]Ask about the indexed articles. /sources shows the last answer's sources, /reset clears history, /quit "
        "exits.[/]"
    )
    while True:
        try:
            line = out.input("[bold green]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return
        if line == "/reset":
            history, last = [], None
            out.print("[dim]history cleared[/]")
            continue
        if line == "/sources":
            if last is None:
                out.print("[dim]no answer yet[/]")
            elif last.citations:
                print_answer(last)
            else:
                print_closest(last.sources)
            continue
        try:
            last = _ask_streaming(pipeline, line, mode=mode, top_k=top_k, as_of=as_of, history=history)
        except RagError as exc:
            err.print(f"[red]error:[/] {escape(one_line(str(exc)))}")
            continue
        if last.standalone_question != last.question:
            out.print(f"[dim](searched for: {escape(last.standalone_question)})[/]")
        print_answer(last, show_sources=False)
        history += [ChatTurn(role="user", content=line), ChatTurn(role="assistant", content=last.text)]
