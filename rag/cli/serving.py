"""`rag info` and `rag serve`: what this installation runs with, and the HTTP server, mounted on rag.cli.main's app."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from rag.cli.common import JsonOpt, out, settings_of

if TYPE_CHECKING:
    pass


def info_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Index statistics and the models in use (loads no model)."""
    from rag.answer.decision import MODEL_FILE, READER_MODEL_FILE, model_path
    from rag.core.settings import SERVE_MODEL_SLOTS
    from rag.models.reader import reader_path
    from rag.storage.manifest import build_label, read_manifest, vectors_agree

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
            or f"packaged (rag/answer/{READER_MODEL_FILE if reader and settings.use_reader else MODEL_FILE})"
        ),
        "updated_at": manifest.updated_at,
    }
    configured = build_label(settings.embedding_backend, settings.embedding_quantization)
    built = (manifest.embedding_backend, manifest.embedding_quantization)
    if not vectors_agree(built, (settings.embedding_backend, settings.embedding_quantization)):
        info["warning"] = (
            f"questions are embedded by the {configured} backend, the index by {manifest.embedding_build}: int8 and "
            f"float vectors differ, so searching it is refused; set RAG_EMBEDDING_BACKEND={built[0]} "
            f"RAG_EMBEDDING_QUANTIZATION={built[1]}, or `rag reindex --rebuild` re-embeds it with the configured one"
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
