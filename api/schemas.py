"""Request and response bodies of the HTTP API.

Requests ignore fields they do not know (clients send extras, e.g. OpenAI's temperature), but a known field
of the wrong type is a 422. Range and format checks (top_k bounds, dates, question length) stay in the core,
which reports them as 400/413 with the same wording the CLI uses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.answer.claims import ClaimCheck
from rag.core.settings import Settings
from rag.core.types import Answer, ChatTurn, Citation, QuoteReason, ScoredPassage, StoryCopy, Timings, WrittenBy
from rag.ingest.corpus import SUPPORTED_SUFFIXES
from rag.ingest.feeds import FeedInfo, FeedResult
from rag.storage.manifest import DocumentRecord

ModeField = Literal["generate", "extractive"]
SINCE_DOC = "only articles dated on/after YYYY-MM-DD; YYYY-MM or YYYY counts from the period's first day"
UNTIL_DOC = "only articles dated on/before YYYY-MM-DD; YYYY-MM or YYYY counts through the period's last day"
MethodField = Literal["hybrid", "dense", "bm25"]


class ApiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- errors -----------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    type: str = Field(description="our error code, or OpenAI's error type on the /v1/chat and /v1/models routes")
    code: str = Field(description="our error code: bad_input, too_large, not_found, busy, not_ready, ...")
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict]:
    return {status: {"model": ErrorBody} for status in statuses}


# --- ask and search ---------------------------------------------------------------------------------------


class AskRequest(ApiRequest):
    question: str = Field(description="the question; 1..RAG_MAX_QUESTION_CHARS characters")
    top_k: int | None = Field(None, description="passages to retrieve, 1..RAG_MAX_TOP_K (default RAG_TOP_K)")
    mode: ModeField | None = Field(None, description="generate (local model, verified) or extractive (quotes only)")
    since: str | None = Field(None, description=SINCE_DOC)
    until: str | None = Field(None, description=UNTIL_DOC)
    as_of: str | None = Field(
        None,
        description="ask as of YYYY-MM-DD (default today): 'this week' means the week before it, later articles are "
        "left out",
    )
    history: list[ChatTurn] = Field(default_factory=list, description="earlier turns, oldest first, for follow-ups")
    stream: bool = Field(False, description="answer as Server-Sent Events: token..., then answer")


class CheckRequest(ApiRequest):
    claim: str = Field(description="the claim to check, e.g. a draft sentence; 1..RAG_MAX_QUESTION_CHARS characters")
    top_k: int | None = Field(None, description="passages to retrieve, 1..RAG_MAX_TOP_K (default RAG_TOP_K)")
    since: str | None = Field(None, description=SINCE_DOC)
    until: str | None = Field(None, description=UNTIL_DOC)
    as_of: str | None = Field(None, description="check as of YYYY-MM-DD (default today): later articles are left out")


class CheckResponse(ClaimCheck):
    """The archive's verdict on the claim: `supported` (a quote states it), `contradicted` (a quote about the same
    thing says otherwise) or `not_found`; `citations` are the quotes that decide it, strongest first."""

    @classmethod
    def of(cls, check: ClaimCheck) -> CheckResponse:
        return cls.model_validate(check.model_dump())


class QuoteOut(BaseModel):
    text: str = Field(description="an article sentence that supports a claim, verbatim")
    span: tuple[int, int] = Field(description="[start, end) of the quote in the cleaned article text")
    support: float


class CitationOut(BaseModel):
    number: int = Field(description="the [n] in the answer text; one number per passage")
    doc_id: str
    passage_id: str
    title: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None
    quote: str = Field(description="the first quote of `quotes`, verbatim (kept for clients of the one-quote shape)")
    span: tuple[int, int] = Field(description="[start, end) of `quote` in the cleaned article text")
    support: float
    quotes: list[QuoteOut] = Field(
        description="every sentence of this passage that the answer cites, in order of first use"
    )
    also_in: list[StoryCopy] = Field(
        default_factory=list,
        description="other outlets' copies of the same story (near-duplicates folded into this one)",
    )

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(
            number=c.number,
            doc_id=c.doc_id,
            passage_id=c.passage_id,
            title=c.title,
            source=c.source,
            date=c.date,
            url=c.url,
            quote=c.quote,
            span=(c.start, c.end),
            support=c.support,
            quotes=[QuoteOut(text=q.text, span=(q.start, q.end), support=q.support) for q in c.all_quotes()],
            also_in=c.also_in,
        )


class PassageOut(BaseModel):
    rank: int
    doc_id: str
    passage_id: str
    title: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    span: tuple[int, int]
    text: str
    also_in: list[StoryCopy] = Field(
        default_factory=list, description="other outlets' copies of the same story, folded into this passage"
    )

    @classmethod
    def of(cls, sp: ScoredPassage) -> PassageOut:
        p = sp.passage
        return cls(
            rank=sp.rank,
            doc_id=p.doc_id,
            passage_id=p.passage_id,
            title=p.meta.title,
            source=p.meta.source,
            date=p.meta.date,
            url=p.meta.url,
            score=sp.score,
            dense_score=sp.dense_score,
            bm25_score=sp.bm25_score,
            span=(p.start, p.end),
            text=p.text,
            also_in=sp.also_in,
        )


class AskResponse(BaseModel):
    question: str
    standalone_question: str = Field(description="the question after follow-up rewriting")
    answer: str = Field(description="verified answer with [n] markers, or the abstain message")
    mode: ModeField
    abstained: bool
    abstain_reason: str | None = None
    written_by: WrittenBy = Field(
        description='who wrote the answer\'s sentences: "model" (each kept only where its cited quote supports it), '
        '"quotes" (the articles\' sentences verbatim), or "nobody" (a refusal)'
    )
    quoted_because: QuoteReason | None = Field(
        None,
        description="why the answer is quotes rather than the model's words: extractive_mode (asked for), "
        "no_generator (none could be loaded: generator_problem), draft_unsupported (no sentence of the model's draft "
        "passed verification), typed_answer (who/when/where/how many, and a sentence states it), "
        "drafts_measured_weak (RAG_GENERATION_MIN_SURVIVAL), timeline, reporting_question (which outlet, when, "
        "what headline)",
    )
    generator_problem: str | None = Field(None, description="why no generator could be loaded")
    confidence: float | None = Field(
        None, description="the answer decision's probability that the evidence answers the question"
    )
    as_of: str | None = Field(None, description="the date the question was answered as of")
    citations: list[CitationOut]
    sources: list[PassageOut] = Field(description="the passages retrieved, shown even when abstaining")
    timings: Timings

    @classmethod
    def of(cls, a: Answer) -> AskResponse:
        return cls(
            question=a.question,
            standalone_question=a.standalone_question,
            answer=a.text,
            mode=a.mode,
            abstained=a.abstained,
            abstain_reason=a.abstain_reason,
            written_by=a.written_by,
            quoted_because=a.quoted_because,
            generator_problem=a.generator_problem,
            confidence=a.confidence,
            as_of=a.as_of,
            citations=[CitationOut.of(c) for c in a.citations],
            sources=[PassageOut.of(s) for s in a.sources],
            timings=a.timings,
        )


class SearchRequest(ApiRequest):
    query: str
    top_k: int | None = None
    since: str | None = Field(None, description=SINCE_DOC)
    until: str | None = Field(None, description=UNTIL_DOC)
    method: MethodField = "hybrid"


class SearchResponse(BaseModel):
    query: str
    results: list[PassageOut]


# --- documents --------------------------------------------------------------------------------------------


class DocumentList(BaseModel):
    documents: list[DocumentRecord]
    total: int
    generation: int


class PassageRef(BaseModel):
    passage_id: str
    ordinal: int
    span: tuple[int, int]


class DocumentDetail(DocumentRecord):
    url: str | None = None
    author: str | None = None
    text: str = Field(description="the cleaned article text that citation spans point into")
    passage_ids: list[str]
    passage_spans: list[PassageRef]


class UploadResponse(BaseModel):
    status: Literal["added", "updated", "unchanged"]
    document: DocumentRecord
    generation: int
    passages_embedded: int
    total_documents: int


class DeleteResponse(BaseModel):
    deleted: str
    generation: int
    total_documents: int


# --- health -----------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class IndexStats(BaseModel):
    documents: int
    passages: int
    generation: int


class PageConfig(BaseModel):
    """What the web page needs to know before it has the key: whether to ask for one, what to offer."""

    auth_required: bool = Field(description="true when RAG_API_KEY is set: send `Authorization: Bearer <key>`")
    allow_uploads: bool
    allow_deletes: bool
    upload_types: list[str] = Field(description="file name endings an upload may have")
    max_upload_bytes: int
    max_question_chars: int
    top_k: int = Field(description="passages retrieved when a request names no top_k")
    max_top_k: int
    mode: ModeField = Field(description="answer mode when a request names none")

    @classmethod
    def of(cls, s: Settings, *, auth_required: bool) -> PageConfig:
        return cls(
            auth_required=auth_required,
            allow_uploads=s.allow_uploads,
            allow_deletes=s.allow_deletes,
            upload_types=sorted(SUPPORTED_SUFFIXES),
            max_upload_bytes=s.max_upload_bytes,
            max_question_chars=s.max_question_chars,
            top_k=s.top_k,
            max_top_k=s.max_top_k,
            mode=s.mode,
        )


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    index: IndexStats
    embedder: str
    generator: str | None


# --- OpenAI-compatible ------------------------------------------------------------------------------------


# --- URLs and feeds (rag/ingest/fetch.py, rag/ingest/feeds.py)
# ----------------------------------------------------------


class UrlRequest(ApiRequest):
    url: str = Field(description="an http(s) URL: a page for POST /v1/documents, a feed for POST /v1/feeds")


class FeedsUpdateRequest(ApiRequest):
    urls: list[str] | None = Field(None, description="only these subscribed feeds (default: all)")


class FeedList(BaseModel):
    feeds: list[FeedInfo]


class FeedAdded(BaseModel):
    status: Literal["added", "exists"]
    feed: FeedInfo


class FeedsUpdated(BaseModel):
    feeds: list[FeedResult]
    added: list[str]
    updated: list[str]
    generation: int
    total_documents: int
