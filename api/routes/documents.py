"""Documents: upload (indexed incrementally), list, read, delete.

Writes are serialised by an asyncio lock (and across processes by the on-disk IndexLock) and run in the
CPU pool behind the "upload" lane (api/admission.py), deletes and URL uploads included. Each commits a new
index generation and then swaps it into the pipeline, so requests already running finish on the generation
they started with, and the API never reports what the disk does not hold.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import DeletesAllowed, PipelineDep, RuntimeDep, SettingsDep, UploadsAllowed, WriterPipelineDep
from api.schemas import (
    DeleteResponse,
    DocumentDetail,
    DocumentList,
    PassageRef,
    UploadResponse,
    UrlRequest,
    error_responses,
)
from rag.core.errors import BadInputError, DocumentNotFoundError, TooLargeError
from rag.ingest.corpus import SUPPORTED_SUFFIXES, validate_doc_id
from rag.ingest.fetch import add_url
from rag.ingest.indexing import IndexReport, add_document, remove_documents
from rag.storage.index import Index
from rag.storage.manifest import DocumentRecord

router = APIRouter(tags=["documents"])

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"UTF-8 text: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
                        },
                        "doc_id": {
                            "type": "string",
                            "description": "id to store it under (default: the file name's stem)",
                        },
                    },
                }
            },
            "application/json": {"schema": UrlRequest.model_json_schema()},  # a page to fetch (rag/ingest/fetch.py)
        },
    }
}


def check_upload_name(name: str | None) -> str:
    """The client's file name only tells the file type; still, refuse anything that looks like a path."""
    if not name:
        raise BadInputError("the upload has no file name; send it as a multipart file with a name like story.txt")
    plain = PurePosixPath(name).name == name and PureWindowsPath(name).name == name
    if not plain or name.startswith(".") or "\x00" in name or len(name) > 255:
        raise BadInputError(f"invalid upload name {name!r}: send a plain file name such as story.txt, without folders")
    return name


def find_record(index: Index, doc_id: str) -> DocumentRecord:
    validate_doc_id(doc_id)
    record = index.manifest.documents.get(doc_id)
    if record is None:
        raise DocumentNotFoundError(f"no document {doc_id!r} in the index")
    return record


@router.post(
    "/v1/documents",
    status_code=201,
    response_model=UploadResponse,
    dependencies=[UploadsAllowed],
    openapi_extra=UPLOAD_SCHEMA,
    summary='Upload a .txt/.md/.html article, or send {"url": ...} to fetch a page; it is cleaned, chunked, embedded '
    "and searchable at once",
    responses={
        200: {"model": UploadResponse, "description": "same content was already indexed under this id"},
        **error_responses(400, 401, 403, 409, 413, 415, 502, 503, 504),
    },
)
async def upload_document(
    request: Request, response: Response, runtime: RuntimeDep, pipeline: WriterPipelineDep
) -> UploadResponse:
    # The form is parsed here, after the key and the switch were checked, so a refused caller's body is never read.
    settings = runtime.settings
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        url = parse_url_request(await request.body())
        # The same lane and lock as a file: a fetch is an upload whose bytes come from elsewhere, and without the
        # lane any number of slow pages were fetched and committed at once. The lock is held through the fetch,
        # which RAG_FETCH_TIMEOUT_S bounds as a whole (rag/ingest/transport.py).
        place = runtime.admission.reserve("upload")
        async with runtime.write_lock:
            index, report = await runtime.admission.run_reserved(
                place, add_url, settings, lambda: pipeline.embedder, url
            )
            pipeline.use_index(index)
        return upload_response(response, index, report)
    async with request.form(max_files=1, max_fields=1, max_part_size=4096) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadInputError("send the document as the multipart/form-data file field 'file'")
        name = check_upload_name(upload.filename)
        doc_id = form.get("doc_id")
        if doc_id is not None and not isinstance(doc_id, str):
            raise BadInputError("doc_id must be a text field")
        data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise TooLargeError(
            f"{name} is larger than the limit of {settings.max_upload_bytes} bytes (RAG_MAX_UPLOAD_BYTES)"
        )
    if not data:
        raise BadInputError(f"{name} is empty")
    place = runtime.admission.reserve("upload")  # refused at once when uploads are backed up, before the lock
    async with runtime.write_lock:
        index, report = await runtime.admission.run_reserved(
            place, add_document, settings, pipeline.embedder, name, data, doc_id or None
        )
        pipeline.use_index(index)
    return upload_response(response, index, report)


def parse_url_request(body: bytes) -> str:
    try:
        return UrlRequest.model_validate_json(body).url
    except ValidationError:
        raise BadInputError(
            'send a page to fetch as JSON {"url": "https://..."}, or a file as multipart/form-data'
        ) from None


def upload_response(response: Response, index: Index, report: IndexReport) -> UploadResponse:
    status = "added" if report.added else "updated" if report.updated else "unchanged"
    stored_id = (report.added or report.updated or report.unchanged)[0]
    if status == "unchanged":
        response.status_code = 200
    return UploadResponse(
        status=status,
        document=index.manifest.documents[stored_id],
        generation=index.generation,
        passages_embedded=report.passages_embedded,
        total_documents=len(index.manifest.documents),
    )


@router.get(
    "/v1/documents", response_model=DocumentList, summary="Every indexed document", responses=error_responses(401, 503)
)
async def list_documents(pipeline: PipelineDep) -> DocumentList:
    index = pipeline.index
    docs = sorted(index.manifest.documents.values(), key=lambda d: d.doc_id)
    return DocumentList(documents=docs, total=len(docs), generation=index.generation)


@router.get(
    "/v1/documents/{doc_id:path}",
    response_model=DocumentDetail,
    summary="A document's metadata, cleaned text (what citation spans point into) and passage ids",
    responses=error_responses(400, 401, 404, 503),
)
async def get_document(doc_id: str, pipeline: PipelineDep) -> DocumentDetail:
    index = pipeline.index  # one generation for the whole reply, even if a write swaps it meanwhile
    record = find_record(index, doc_id)
    article = index.articles[doc_id]
    passages = index.passages_of(doc_id)
    return DocumentDetail(
        **record.model_dump(),
        url=article.meta.url,
        author=article.meta.author,
        text=article.text,
        passage_ids=[p.passage_id for p in passages],
        passage_spans=[PassageRef(passage_id=p.passage_id, ordinal=p.ordinal, span=(p.start, p.end)) for p in passages],
    )


@router.delete(
    "/v1/documents/{doc_id:path}",
    response_model=DeleteResponse,
    dependencies=[DeletesAllowed],
    summary="Remove a document from the index and delete its stored copy",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def delete_document(
    doc_id: str, runtime: RuntimeDep, settings: SettingsDep, pipeline: PipelineDep
) -> DeleteResponse:
    validate_doc_id(doc_id)
    place = runtime.admission.reserve("upload")
    async with runtime.write_lock:
        index, _ = await runtime.admission.run_reserved(place, remove_documents, settings, pipeline.embedder, [doc_id])
        pipeline.use_index(index)
    return DeleteResponse(deleted=doc_id, generation=index.generation, total_documents=len(index.manifest.documents))
