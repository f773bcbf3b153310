"""`rag index`, `rag remove`, `rag reindex` and `rag migrate`: what the index holds, and where; mounted on
rag.cli.main's app."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from rag.cli.common import err, index_progress, out, settings_of
from rag.core.errors import BadInputError

if TYPE_CHECKING:
    pass


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    )


def index_cmd(
    ctx: typer.Context,
    targets: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="PATHS", help="files or folders (.txt .md .html), or http(s) page URLs"),
    ] = None,
    optimize: Annotated[
        bool, typer.Option("--optimize", help="then merge the index's segments into one (faster loading)")
    ] = False,
) -> None:
    """Add or update documents; unchanged files cost no embedding work. Long runs commit as they go."""
    import time

    from rag.ingest.fetch import index_urls, split_targets
    from rag.ingest.indexing import IndexReport, index_paths, optimize_index
    from rag.models.embedding import build_embedder

    settings = settings_of(ctx)
    if not targets and not optimize:
        raise BadInputError("name files, folders or URLs to index, or pass --optimize")
    urls, paths = split_targets(targets or [])  # a URL of another scheme is refused before the model loads
    embedder, report = (
        functools.cache(lambda: build_embedder(settings)),
        IndexReport(),
    )  # not loaded when every URL fails
    started = time.monotonic()
    if paths:
        with index_progress() as progress:
            _, report = index_paths(settings, embedder(), paths, progress=progress)
    if urls:  # feeds: rag/cli/feeds.py
        _, report = index_urls(settings, embedder, urls, report=report)
    for skipped in report.skipped:
        err.print(f"[yellow]skipped[/] {escape(skipped.path)}: {escape(skipped.reason)}")
    if targets:
        elapsed = time.monotonic() - started
        out.print(
            f"indexed: {len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
            f"{len(report.skipped)} skipped; {report.passages_embedded} passages embedded in {elapsed:.1f}s "
            f"({report.passages_embedded / max(elapsed, 1e-9):.0f}/s, {report.commits} commits); "
            f"index now {report.total_documents} documents / {report.total_passages} passages (generation "
            f"{report.generation})",
            soft_wrap=True,  # one line, however narrow the terminal
        )
    if optimize:
        index = optimize_index(settings, embedder())
        out.print(
            f"optimized: {len(index.manifest.segments)} segment, {len(index.passages)} passages (generation "
            f"{index.generation})"
        )
    if report.skipped and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def remove_cmd(
    ctx: typer.Context, doc_ids: Annotated[list[str], typer.Argument(help="document ids (file stems)")]
) -> None:
    """Delete documents from the index."""
    from rag.ingest.corpus import validate_doc_id
    from rag.ingest.indexing import remove_documents
    from rag.models.embedding import build_embedder

    for doc_id in doc_ids:
        validate_doc_id(doc_id)  # before the model load, not after
    _, report = remove_documents(settings_of(ctx), build_embedder(settings_of(ctx)), doc_ids)
    out.print(
        f"removed {', '.join(report.removed)}; index now {report.total_documents} documents / {report.total_passages} "
        "passages"
    )


def reindex_cmd(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="re-embed everything from scratch")] = False,
) -> None:
    """Rebuild the index from the stored copies of indexed documents (after a crash or a settings change)."""
    from rag.ingest.indexing import reindex
    from rag.models.embedding import build_embedder

    settings = settings_of(ctx)
    with index_progress() as progress:
        _, report = reindex(settings, build_embedder(settings), rebuild=rebuild, progress=progress)
    out.print(
        f"reindexed: {len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed; "
        f"{report.passages_embedded} passages embedded, {report.commits} commits; {report.total_documents} documents / "
        f"{report.total_passages} passages"
    )


def migrate_cmd(
    ctx: typer.Context,
    to: Annotated[
        Optional[str], typer.Option("--to", help="target vector store: milvus (or faiss, to move back)")
    ] = None,
    store: Annotated[
        Optional[str], typer.Option("--store", help="move the whole index: milvus (RAG_STORE=milvus) or local (back)")
    ] = None,
    uri: Annotated[
        Optional[str],
        typer.Option("--uri", help="Milvus URI: a .db file path (Milvus Lite) or http://host:19530 (RAG_MILVUS_URI)"),
    ] = None,
    collection: Annotated[
        Optional[str], typer.Option("--collection", help="Milvus collection (RAG_MILVUS_COLLECTION)")
    ] = None,
) -> None:
    """Copy the index's vectors into another vector store (--to), or the whole index into another store (--store),
    without re-embedding."""
    from rag.storage.migrate import migrate, migrate_store

    if (to is None) == (store is None):
        raise BadInputError("give one of --to (the vector store) or --store (the whole index)")
    if store is not None:
        moved = migrate_store(settings_of(ctx), to=store, uri=uri)
        out.print(
            f"migrated {moved.documents} documents, {moved.passages} passages from the {moved.source} store to "
            f"{moved.target} (generation {moved.generation})"
        )
        out.print("now set, for every command and the server:")
        for key, value in moved.env().items():
            out.print(f"  {key}={escape(value)}", soft_wrap=True)
        return
    assert to is not None
    with _progress_bar() as bar:
        task = bar.add_task("copy", total=None)
        report = migrate(
            settings_of(ctx),
            to=to,
            uri=uri,
            collection=collection,
            progress=lambda d, t: bar.update(task, completed=d, total=t),
        )
    out.print(
        f"migrated {report.vectors} vectors from {report.source} to {report.target} (generation {report.generation})"
    )
    out.print("now set, for every command and the server:")
    for key, value in report.env().items():
        # a line to copy into a shell or .env: a wrap would break the path in two
        out.print(f"  {key}={escape(value)}", soft_wrap=True)
