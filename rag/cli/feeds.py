"""`rag feeds add|list|remove` and `rag update`: RSS and Atom subscriptions (rag/ingest/feeds.py), mounted on
rag.cli.main's app.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

feeds_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Subscribe to RSS/Atom feeds; `rag update` indexes their new items.",
)
# soft_wrap: a line holds a URL, which a wrap would cut in two
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@feeds_app.command("add")
def add_cmd(ctx: typer.Context, url: Annotated[str, typer.Argument(help="the feed's http(s) URL")]) -> None:
    """Subscribe to a feed (fetched once to check it is RSS or Atom; `rag update` indexes its items)."""
    from rag.ingest.feeds import add_feed

    feed, added = add_feed(ctx.obj, url)
    verb = "subscribed to" if added else "already subscribed to"
    out.print(
        f"{verb} {escape(feed.url)}"
        + (f" ({escape(feed.title)})" if feed.title else "")
        + ("; run `rag update` to index its items" if added else "")
    )


@feeds_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The subscribed feeds."""
    from rag.ingest.feeds import list_feeds

    feeds = list_feeds(ctx.obj)
    if as_json:
        print(json.dumps([f.model_dump() for f in feeds], indent=2, ensure_ascii=False))
        return
    if not feeds:
        out.print("no feeds; add one with `rag feeds add URL`")
    for f in feeds:
        retries = f", {f.pending_retries} to retry" if f.pending_retries else ""
        out.print(
            f"{escape(f.url)}  {escape(f.title or '(untitled)')}  {f.items_seen} items seen{retries}, last new "
            f"{f.last_new_at or 'never'}"
        )


@feeds_app.command("remove")
def remove_cmd(ctx: typer.Context, url: Annotated[str, typer.Argument(help="a subscribed feed's URL")]) -> None:
    """Unsubscribe; articles already indexed from the feed stay (`rag remove ID` deletes them)."""
    from rag.ingest.feeds import remove_feed

    feed = remove_feed(ctx.obj, url)
    out.print(f"unsubscribed from {escape(feed.url)}; its {feed.items_seen} indexed items stay in the index")


def update_cmd(
    ctx: typer.Context,
    urls: Annotated[Optional[list[str]], typer.Argument(help="only these subscribed feeds (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Poll the subscribed feeds (conditional GET) and index items not seen before."""
    from rag.ingest.feeds import update_feeds
    from rag.models.embedding import build_embedder

    settings = ctx.obj
    _, report = update_feeds(settings, lambda: build_embedder(settings), urls=urls or None)
    if as_json:
        print(report.model_dump_json(indent=2))
        raise typer.Exit(1 if report.failed else 0)
    if not report.feeds:
        out.print("no feeds; add one with `rag feeds add URL`")
    for feed in report.feeds:
        if feed.error:
            err.print(f"[red]feed failed[/] {escape(feed.url)}: {escape(feed.error)}")
            continue
        state = {"not_modified": "not modified", "unchanged": "no new items"}.get(
            feed.status, f"{feed.new} new, {len(feed.indexed)} indexed"
        )
        out.print(f"{escape(feed.url)}: {state}")
        for item in feed.skipped:
            err.print(f"[yellow]skipped[/] {escape(item.path)}: {escape(item.reason)}")
    for item in report.index.skipped:
        err.print(f"[yellow]skipped[/] {escape(item.path)}: {escape(item.reason)}")
    if report.index.changed:
        out.print(
            f"index now {report.index.total_documents} documents / {report.index.total_passages} passages (generation "
            f"{report.index.generation})"
        )
    if report.failed:
        raise typer.Exit(1)
