"""What routes receive: the app's runtime state, settings, the pipeline, and the guards (API key, switches).

Aliases as `Annotated[..., Depends(...)]` so a route's signature says what it needs and nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from api.admission import Admission
from api.errors import forbidden, unauthorized
from api.metrics import Metrics
from api.queue import GenerationQueue
from rag.answer.pipeline import Pipeline
from rag.core.errors import IndexMissingError, ModelMissingError, RagError
from rag.core.settings import Settings
from rag.storage.index import Index
from rag.storage.loading import load_index
from rag.storage.manifest import current_generation_dir
from rag.storage.store import open_store


@dataclass
class Runtime:
    """Everything one app instance holds; lives on app.state, never in a module global."""

    settings: Settings
    metrics: Metrics
    queue: GenerationQueue
    admission: Admission
    pipeline: Pipeline | None = None
    load_error: RagError | None = None
    background: set[asyncio.Task] = field(default_factory=set)  # keeps streaming workers referenced
    _write_lock: asyncio.Lock | None = None
    _index_lock: threading.Lock = field(default_factory=threading.Lock)  # one load of a newly appeared index

    def attach(self, pipeline: Pipeline) -> None:
        # The pipeline's generator is wrapped in place: every path that generates (answers, follow-up
        # rewrites) must pass the same gate, and the pipeline is the one place they all look it up.
        if pipeline.generator is not None:
            pipeline.generator = self.queue.gate(pipeline.generator)
        self.pipeline = pipeline
        self.load_error = None

    @property
    def write_lock(self) -> asyncio.Lock:
        # Created on first use, inside the running loop, so an app built outside any loop still works.
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    async def adopt(self, pipeline: Pipeline, index: Index) -> None:
        """Serve a generation committed outside the write lock (URL and feed writes fetch for seconds first):
        only if it is newer, since a write that took the lock meanwhile may have swapped in a later one."""
        async with self.write_lock:
            if index.generation > pipeline.index.generation:
                pipeline.use_index(index)

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and has_index(self.pipeline)

    def serving_pipeline(self) -> Pipeline:
        """The pipeline, once it has an index to answer from. A server started before any index existed looks
        for one on each request (a stat of CURRENT), so `rag index` in another shell makes it ready."""
        if self.pipeline is None:
            # The reason start-up failed (model missing, corrupt index) is the most useful thing to say.
            raise self.load_error or ModelMissingError("the index and models are still loading; see /readyz")
        pipeline = self.pipeline
        if self.settings.store != "local":
            self.follow_store(pipeline)
        elif not has_index(pipeline):
            with self._index_lock:
                if not has_index(pipeline) and current_generation_dir(self.settings.index_dir) is not None:
                    pipeline.use_index(
                        load_index(
                            self.settings, embedding_model=pipeline.embedder.name, dimension=pipeline.embedder.dimension
                        )
                    )
            if not has_index(pipeline):
                raise IndexMissingError(
                    f"no index at {self.settings.index_dir} yet: run `rag index PATH` or upload a document (POST "
                    "/v1/documents)"
                )
        return pipeline

    def follow_store(self, pipeline: Pipeline) -> None:
        """A shared store (RAG_STORE=milvus) is written by every replica: before each request, one read of its
        stamp, and a reload when another replica committed since this one loaded."""
        store = open_store(self.settings)
        if not store.is_stale(pipeline.index):
            return
        with self._index_lock:
            # Asked again under the lock: the requests that saw the change together reload it once, not each.
            newer = store.refresh(pipeline.index)
            if newer is not None:
                pipeline.use_index(newer)

    def index_stats(self) -> tuple[int, int, int]:
        if self.pipeline is None:
            return 0, 0, 0
        index = self.pipeline.index
        return len(index.manifest.documents), len(index.passages), index.generation


# Dependencies that only read state are `async def`: FastAPI runs a plain `def` in the threadpool, and a thread
# hop per dependency is what a refused request (503 in well under 100 ms) cannot afford on a busy machine.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def has_index(pipeline: Pipeline) -> bool:
    # Generation 0 is the empty stand-in loaded when no index existed; every committed one is 1 or more.
    return pipeline.index.generation > 0


async def get_pipeline(runtime: RuntimeDep) -> Pipeline:
    if runtime.ready and runtime.settings.store == "local":
        return runtime.pipeline  # type: ignore[return-value]  # ready means loaded, with an index
    # Loading an index that just appeared may take a while: off the event loop.
    return await run_in_threadpool(runtime.serving_pipeline)


async def get_writer_pipeline(runtime: RuntimeDep) -> Pipeline:
    """For uploads: the models suffice, since the first upload to a server with no index creates it."""
    try:
        return await get_pipeline(runtime)
    except IndexMissingError:
        assert runtime.pipeline is not None
        return runtime.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
WriterPipelineDep = Annotated[Pipeline, Depends(get_writer_pipeline)]

_bearer = HTTPBearer(
    auto_error=False,
    description="Needed on every route but /healthz, /v1/config and the web page when RAG_API_KEY is set",
)


def configured_key(settings: Settings) -> str:
    """RAG_API_KEY, or "" when none is set (settings built in code may hold it as a plain str)."""
    key = settings.api_key
    return key.get_secret_value() if isinstance(key, SecretStr) else (key or "")


async def require_api_key(
    runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    key = configured_key(runtime.settings)
    if not key:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized()
    # Constant-time comparison: response timing must not reveal how much of a guessed key was right.
    if not hmac.compare_digest(credentials.credentials.encode(), key.encode()):
        raise unauthorized()


Auth = Depends(require_api_key)


async def require_uploads(settings: SettingsDep) -> None:
    if not settings.allow_uploads:
        raise forbidden("uploads are disabled on this server (RAG_ALLOW_UPLOADS=false)")


async def require_deletes(settings: SettingsDep) -> None:
    if not settings.allow_deletes:
        raise forbidden("deleting documents is disabled on this server (RAG_ALLOW_DELETES=false)")


UploadsAllowed = Depends(require_uploads)
DeletesAllowed = Depends(require_deletes)
