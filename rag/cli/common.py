"""What every `rag` command module shares: the consoles, the option types and the settings built at the edge."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rag.core.settings import Settings
    from rag.ingest.batches import IndexProgress

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, never wrapped

ModeOpt = Annotated[
    Optional[str], typer.Option("--mode", "-m", help="generate (local LLM, verified) or extractive (quotes only)")
]
TopKOpt = Annotated[Optional[int], typer.Option("--top-k", "-k", help="passages to retrieve")]
SinceOpt = Annotated[
    Optional[str],
    typer.Option("--since", help="only articles dated on/after YYYY-MM-DD; YYYY-MM or YYYY from its first day"),
]
UntilOpt = Annotated[
    Optional[str],
    typer.Option("--until", help="only articles dated on/before YYYY-MM-DD; YYYY-MM or YYYY through its last day"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
AsOfOpt = Annotated[
    Optional[str],
    typer.Option(
        "--as-of",
        help="ask as of YYYY-MM-DD (default today): 'this week' is the week before it; later articles are left out",
    ),
]


def settings_of(ctx: typer.Context) -> Settings:
    """The one Settings, built by the app's callback from flags and RAG_ variables."""
    return ctx.obj


@contextlib.contextmanager
def index_progress() -> Iterator[Callable[[IndexProgress], None] | None]:
    """On a terminal, a bar of articles done out of the total with passages/s and the time left; elsewhere
    nothing (the command prints its one-line summary at the end)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("articles  {task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("index", total=None, rate="")

        def show(state: IndexProgress) -> None:
            rate = f"{state.passages_embedded} passages, {state.passages_per_s:.0f}/s, {state.commits} commits"
            bar.update(task, completed=state.articles_done, total=state.articles_total, rate=rate)

        yield show


def one_line(message: str) -> str:
    # Some messages embed a library's multi-line text (pydantic's validation report); an error stays one line.
    return " ".join(message.split())
