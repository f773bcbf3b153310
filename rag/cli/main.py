"""The `rag` command. Heavy libraries (torch, llama.cpp) load inside the commands that need them."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from rag.cli.common import AsOfOpt, JsonOpt, ModeOpt, SinceOpt, TopKOpt, UntilOpt, err, index_progress, out, settings_of
from rag.cli.eval import calibrate_cmd, eval_cmd, squad_cmd
from rag.cli.feeds import feeds_app, update_cmd
from rag.core.errors import BadInputError, RagError

if TYPE_CHECKING:
    from rag.core.settings import Settings
    from rag.core.types import Answer, ScoredPassage

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="newsrag: private question answering over news articles, with checked citations.",
)


@app.callback()
def main_options(
    ctx: typer.Context,
    index_dir: Annotated[Optional[Path], typer.Option("--index-dir", help="index directory (RAG_INDEX_DIR)")] = None,
) -> None:
    from pydantic import ValidationError

    from rag.core.settings import Settings

    overrides = {"index_dir": index_dir} if index_dir else {}
    try:
        ctx.obj = Settings(**overrides)
    except ValidationError as exc:
        # A check across settings (a model validator) has no field name to show.
        problems = "; ".join(
            (f"RAG_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"] for e in exc.errors()
        )
        raise BadInputError(f"invalid setting: {problems}") from None


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    )


@app.command("index")
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


@app.command("remove")
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


@app.command("reindex")
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


def _search_pipeline(settings: Settings):
    from rag.answer.pipeline import Pipeline

    return Pipeline.from_settings(settings, with_generator=False)


@app.command("search")
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

    if answer.fallback and answer.fallback.startswith("extractive:"):
        err.print(f"[yellow]note:[/] answered by quoting the articles, no generator: {escape(answer.fallback[12:])}")
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


@app.command("ask")
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


@app.command("chat")
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


@app.command("info")
def info_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Index statistics and the models in use (loads no model)."""
    from rag.answer.decision import MODEL_FILE, READER_MODEL_FILE, model_path
    from rag.core.settings import SERVE_MODEL_SLOTS
    from rag.models.reader import reader_path
    from rag.storage.manifest import read_manifest

    settings = settings_of(ctx)
    reader = reader_path(settings)
    if settings.store == "milvus":
        from rag.storage.milvus.records import load_stored

        manifest = load_stored(settings).manifest
    else:
        manifest = read_manifest(settings.index_dir)
    info = {
        "index_dir": str(settings.index_dir)
        if settings.store == "local"
        else f"milvus ({settings.milvus_uri}, {settings.milvus_store_prefix}_*)",
        "generation": manifest.generation,
        "documents": len(manifest.documents),
        "passages": manifest.count,
        "segments": f"{len(manifest.segments)}, {sum(e.passages for e in manifest.segments) - manifest.count} removed "
        "rows until a merge"
        if manifest.format_version > 1
        else "none (format 1: one folder; the next write converts it)",
        "embedding_model": manifest.embedding_model,
        "embedding_backend": manifest.embedding_build,
        "dimension": manifest.dimension,
        "chunking": f"{manifest.chunk_size} words, {manifest.chunk_overlap} overlap",
        "vector_store": f"{manifest.vector_backend} ({manifest.vector_kind})",
        "generator": settings.generator_backend
        if settings.generator_backend != "llama_cpp"
        else f"llama_cpp: {settings.gguf_path or 'bundled SmolLM2-135M-Instruct Q4_1'}",
        "generate_mode": _generate_mode(settings),
        "model_slots": f"{settings.model_slots or 1} here, {settings.model_slots or SERVE_MODEL_SLOTS} under `rag "
        "serve` (RAG_MODEL_SLOTS)",
        "reader": str(reader or "none (`make reader` trains it)")
        if settings.use_reader
        else "off (RAG_USE_READER=true and `make reader` turn it on)",
        "answer_decision": str(
            settings.decision_model
            or model_path(settings.index_dir)
            or f"packaged (rag/{READER_MODEL_FILE if reader and settings.use_reader else MODEL_FILE})"
        ),
        "updated_at": manifest.updated_at,
    }
    configured = settings.embedding_backend + (
        "" if settings.embedding_quantization == "none" else f" {settings.embedding_quantization}"
    )
    if configured != manifest.embedding_build:
        info["warning"] = (
            f"questions are embedded by the {configured} backend, the index by {manifest.embedding_build}: search "
            "works "
            "(same model, vectors within cosine ~0.99) but ranks can differ slightly, and adding documents is refused; "
            "`rag reindex --rebuild` re-embeds the index with the configured backend"
        )
    if as_json:
        info["document_list"] = [d.model_dump() for d in manifest.documents.values()]
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    for key, value in info.items():
        out.print(f"[bold]{key}[/]: {escape(str(value))}")
    for d in sorted(manifest.documents.values(), key=lambda d: d.doc_id):
        out.print(f"  {escape(d.doc_id)}  {d.date or 'undated':10}  {d.passages:3} passages  {escape(d.title or '')}")


def _generate_mode(settings) -> str:
    from rag.models.drafting import draft_policy

    policy = draft_policy(settings)
    return (
        "drafts, then verifies"
        if policy.draft
        else f"quotes the evidence: the model is not asked, since {policy.reason}"
    )


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default 8000)")] = None,
) -> None:
    """Run the HTTP API (JSON, SSE streaming, OpenAI-compatible)."""
    import uvicorn

    from api.app import create_app

    settings = settings_of(ctx)
    settings = settings.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command("migrate")
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


app.command("eval")(eval_cmd)
app.command("calibrate")(calibrate_cmd)
app.command("squad")(squad_cmd)
app.command("update")(update_cmd)
app.add_typer(feeds_app, name="feeds")


def one_line(message: str) -> str:
    # Some messages embed a library's multi-line text (pydantic's validation report); an error stays one line.
    return " ".join(message.split())


def main() -> None:
    try:
        app()
    except RagError as exc:
        err.print(f"[red]error:[/] {escape(one_line(str(exc)))}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
