"""The data a question travels through: Article -> Passage -> ScoredPassage -> Evidence -> Answer.

Plain pydantic models so the CLI's --json, the API and the eval report share one shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ArticleMeta(BaseModel):
    """What we know about where an article came from. Every field may be missing."""

    title: str | None = None
    source: str | None = None
    date: str | None = None  # ISO 8601 date (YYYY-MM-DD) when known
    url: str | None = None
    author: str | None = None


class Article(BaseModel):
    """One cleaned document. `text` is the cleaned body; spans elsewhere point into it."""

    doc_id: str
    path: str | None = None
    text: str
    meta: ArticleMeta = Field(default_factory=ArticleMeta)
    content_hash: str  # sha256 of the raw bytes, so unchanged files skip re-embedding
    removed_lines: list[str] = Field(default_factory=list)  # clutter the cleaner dropped


class Passage(BaseModel):
    """A chunk of an article: the unit we embed, index and retrieve."""

    passage_id: str  # DOCID#N
    doc_id: str
    ordinal: int
    text: str
    start: int  # char span into Article.text
    end: int
    meta: ArticleMeta = Field(default_factory=ArticleMeta)


class StoryCopy(BaseModel):
    """Another outlet's copy of the same story (a near-duplicate article folded into the one retrieved)."""

    doc_id: str
    title: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None


class ScoredPassage(BaseModel):
    passage: Passage
    score: float  # fused score used for ranking
    dense_score: float | None = None  # cosine similarity, when the dense retriever found it
    bm25_score: float | None = None
    rank: int = 0
    also_in: list[StoryCopy] = Field(default_factory=list)  # the story's other copies, folded into this passage


class EvidenceSentence(BaseModel):
    """One sentence of a retrieved passage, with its span in the article."""

    text: str
    doc_id: str
    passage_id: str
    start: int
    end: int
    relevance: float = 0.0  # how well it matches the question
    dense: float = 0.0  # cosine of question and sentence
    coverage: float = 0.0  # idf-weighted share of the question's terms in the sentence and its neighbours
    reader: float | None = None  # P(it answers the question) by the reader (rag/models/reader.py), when one ran on it
    timely: float = 1.0  # how well its article's date fits the time the question names ("this week"); 1 without one


class Evidence(BaseModel):
    """What the generator is shown: numbered sources within the context budget."""

    question: str
    sources: list[ScoredPassage]
    sentences: list[EvidenceSentence]
    prompt_tokens_estimate: int = 0
    strength: float = 0.0  # relevance of the best sentence (one of the answer decision's features)
    missing_terms: list[str] = Field(default_factory=list)  # question names/numbers absent from evidence
    reader_weight: float = 0.0  # how much the reader's score adds when sentences are ranked for quoting


class Quote(BaseModel):
    """One article sentence quoted as support, with its span in the cleaned article."""

    text: str
    start: int
    end: int
    support: float = 0.0  # verifier score for the answer sentence it backs


class Citation(BaseModel):
    """A checked link to one passage: one number per passage, however many of its sentences back the answer."""

    number: int  # the [n] shown in the answer text
    doc_id: str
    passage_id: str
    title: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None
    # The first quote, as before citations had several: readers of the one-quote shape keep working.
    quote: str
    start: int  # char span of the quote in the cleaned article
    end: int
    support: float = 0.0  # verifier score for the sentence this citation backs
    quotes: list[Quote] = Field(default_factory=list)  # every quoted sentence of the passage, in order of first use
    also_in: list[StoryCopy] = Field(default_factory=list)  # every other outlet and date that carried the story

    def all_quotes(self) -> list[Quote]:
        """The quotes, also for a citation built with only the first one (older reports, hand-made tests)."""
        return self.quotes or [Quote(text=self.quote, start=self.start, end=self.end, support=self.support)]


class AnswerSentence(BaseModel):
    text: str
    citations: list[int] = Field(default_factory=list)  # citation numbers
    supported: bool = True
    support: float = 0.0
    # The part of `text` taken from the cited article's record, not its words ("Reuters reported it on 19 March
    # 2024:", rag/answer/provenance.py): checked against the citation's metadata, the rest against its quote.
    record: str | None = None


class Timings(BaseModel):
    retrieval_s: float = 0.0
    ttft_s: float | None = None  # time from question to first generated token
    generation_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float | None = None


Mode = Literal["generate", "extractive"]
# Who wrote an answer's sentences: the model (each sentence kept only where its cited quote supports it), the
# articles (sentences quoted verbatim, with a lead written from the article's record for questions about the
# reporting), or nobody (the answer is a refusal).
WrittenBy = Literal["model", "quotes", "nobody"]
# Why an answer is quotes rather than the model's words:
#   extractive_mode     the caller asked for quotes (--mode extractive)
#   no_generator        generate mode, but no generator could be loaded (generator_problem says why)
#   draft_unsupported   the model was asked, and none of its sentences passed verification
#   typed_answer        who/when/where/how many, and a sentence states that kind of answer: it is the answer
#   drafts_measured_weak  this model's drafts were measured to lose to quoting (rag/models/drafting.py)
#   timeline            the question asks how something developed: dated quotes in order answer it
#   reporting_question  the question asks which outlet reported something, when, or under what headline
QuoteReason = Literal[
    "extractive_mode",
    "no_generator",
    "draft_unsupported",
    "typed_answer",
    "drafts_measured_weak",
    "timeline",
    "reporting_question",
]


class Answer(BaseModel):
    question: str
    standalone_question: str  # after follow-up rewriting
    text: str  # what the reader sees, with [n] markers
    mode: Mode
    abstained: bool = False
    abstain_reason: str | None = None
    sentences: list[AnswerSentence] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    sources: list[ScoredPassage] = Field(default_factory=list)  # closest sources, shown even on abstain
    raw_generation: str | None = None  # the model's text before verification
    written_by: WrittenBy = "quotes"
    quoted_because: QuoteReason | None = None  # set whenever written_by is "quotes"
    generator_problem: str | None = None  # why no generator could be loaded, when quoted_because is "no_generator"
    confidence: float | None = None  # the answer decision's probability that the evidence answers the question
    as_of: str | None = None  # the date the question was asked from (YYYY-MM-DD)
    timings: Timings = Field(default_factory=Timings)


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str
