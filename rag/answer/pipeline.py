"""A question's whole path: rewrite -> route -> retrieve -> select evidence -> decide -> quote, or generate and
verify -> Answer. `Pipeline.ask` is the router; each path is a small function in this package."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from rag.answer.claims import ClaimCheck, check_claim, load_claim_judge
from rag.answer.compose import abstain, quote
from rag.answer.decision import Decision, DecisionModel, decide, load_model
from rag.answer.evidence import date_sentences, select_evidence, standing
from rag.answer.generate import AnswerWriter, StopCheck, TokenSink, build_messages
from rag.answer.provenance import ProvenanceAsk, attribute, headline_article
from rag.answer.quoting import is_timeline, ranking_key, states_typed_answer
from rag.answer.requests import check_history, check_mode, check_question, check_request
from rag.answer.rewrite import rewrite_followup
from rag.answer.routing import Route, route, scope_note
from rag.core.errors import BadInputError, ModelMissingError, VectorStoreError
from rag.core.settings import Settings
from rag.core.types import (
    Answer,
    AnswerSentence,
    ChatTurn,
    Citation,
    Evidence,
    Mode,
    QuoteReason,
    ScoredPassage,
    Timings,
)
from rag.models.drafting import DraftPolicy, draft_policy
from rag.models.embedding import Embedder
from rag.models.generator import Generator
from rag.models.judge import Judge
from rag.models.prompts import PromptSet
from rag.models.reader import Reader, load_reader, reader_input
from rag.search.periods import parse_date
from rag.search.retriever import Retriever
from rag.storage.index import Index
from rag.text.answer_types import question_type
from rag.text.timeframe import parse_as_of, resolve
from rag.verify.citations import CitationVerifier, render_answer

__all__ = ["Pipeline", "TokenSink", "StopCheck", "check_question", "check_request"]


@dataclass
class Gathered:
    scored: list[ScoredPassage]
    evidence: Evidence
    decision: Decision


class Pipeline:
    """Holds the loaded index and models; one instance serves the CLI, the API and the eval harness."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        embedder: Embedder,
        generator: Generator | None,
        prompts: PromptSet,
        decision: DecisionModel | None = None,
        reader: Reader | None = None,
    ):
        self.settings = settings
        self.embedder = embedder
        self.generator = generator
        self.prompts = prompts
        self.reader = reader
        self.decision = decision or load_model(settings.index_dir, settings.decision_model, reader=reader_kind(reader))
        self.verifier = CitationVerifier(embedder, settings)
        self.generator_problem: str | None = None  # why generate mode falls back to extractive, if it does
        self.drafts = DraftPolicy(
            draft=True
        )  # from_settings reads the model's measured record (rag/models/drafting.py)
        self._outlets_of: tuple[object, set[str]] = (None, set())
        self._judge: tuple[Judge | None, str | None] | None = None  # loaded on the first claim checked
        self.use_index(index)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, with_generator: bool = True, missing_index_ok: bool = False
    ) -> Pipeline:
        """Load models and index from local paths. The generator is optional: extractive mode needs none.
        With missing_index_ok an absent index loads as an empty one (generation 0), for a server to fill later."""
        from rag.models.embedding import build_embedder
        from rag.models.generator import build_generator
        from rag.storage.index import Index
        from rag.storage.store import load_live

        prompts = PromptSet.load(settings.prompts_dir)
        embedder = build_embedder(settings)
        try:
            index = load_live(
                settings, embedding_model=embedder.name, dimension=embedder.dimension, missing_ok=missing_index_ok
            )
        except VectorStoreError:
            if not (missing_index_ok and settings.store == "milvus"):
                raise
            # A shared store down while a server starts must not keep the server down once it is back: no index
            # for now (requests get 503s), and the per-request check of the store loads it (api/deps.py).
            index = Index.empty(
                settings.index_dir,
                settings.model_copy(update={"vector_backend": "faiss"}),
                embedding_model=embedder.name,
                dimension=embedder.dimension,
            )
        reader = load_reader(settings)
        decision = load_model(settings.index_dir, settings.decision_model, reader=reader_kind(reader))
        generator, problem = None, None
        if with_generator:
            try:
                generator = build_generator(settings)
            except ModelMissingError as exc:
                # A GGUF the user named must load; the bundled default being absent degrades to quoting.
                if settings.gguf_path is not None or settings.generator_backend != "llama_cpp":
                    raise
                problem = str(exc)
        pipeline = cls(settings, index, embedder, generator, prompts, decision, reader)
        pipeline.generator_problem = problem
        if generator is not None:
            pipeline.drafts = draft_policy(settings)
        return pipeline

    def use_index(self, index: Index) -> None:
        """Swap in a newer generation; requests already running keep the one they started with."""
        # The retriever carries its index, so a request that took one reads one consistent generation.
        self.retriever = Retriever(index, embedder=self.embedder, settings=self.settings)

    @property
    def index(self) -> Index:
        return self.retriever.index

    # --- inputs -------------------------------------------------------------------------------------------
    def check_question(self, question: str) -> str:
        return check_question(self.settings, question)

    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
        method: str = "hybrid",
    ) -> list[ScoredPassage]:
        query = self.check_question(query)
        if method not in ("hybrid", "dense", "bm25"):
            raise BadInputError(f"method must be hybrid, dense or bm25, got {method!r}")
        return self.retriever.search(
            query,
            top_k=top_k,
            since=parse_date(since, field="since"),
            until=parse_date(until, field="until"),
            method=method,
        )

    # --- checking claims ----------------------------------------------------------------------------------
    def use_judge(self, judge: Judge | None, note: str | None = None) -> None:
        """Check claims with this judge (None: lexical checks only, `note` says why)."""
        self._judge = (judge, note)

    def claim_judge(self) -> tuple[Judge | None, str | None]:
        if self._judge is None:
            self._judge = load_claim_judge(self.settings)
        return self._judge

    def check(
        self,
        claim: str,
        *,
        top_k: int | None = None,
        since: str | None = None,
        until: str | None = None,
        as_of: str | None = None,
    ) -> ClaimCheck:
        """The archive's verdict on a claim, supported / contradicted / not_found, with the deciding quotes."""
        judge, note = self.claim_judge()
        return check_claim(self, claim, judge=judge, note=note, top_k=top_k, since=since, until=until, as_of=as_of)

    # --- answering ----------------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        mode: Mode | None = None,
        top_k: int | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
        as_of: str | date | None = None,
        history: list[ChatTurn] | None = None,
        on_token: TokenSink | None = None,
        should_stop: StopCheck | None = None,
        exclude_docs: frozenset[str] = frozenset(),
    ) -> Answer:
        """`as_of`: the date the question is asked from (default today): "this week" is the week before it and
        articles published after it are left out. `exclude_docs`: articles to leave out (leave-the-gold-out eval)."""
        started = time.perf_counter()
        question = self.check_question(question)
        mode, problem = self._mode(mode)
        window = {"top_k": top_k, "since": parse_date(since, field="since"), "until": parse_date(until, field="until")}
        as_of_d, _ = parse_as_of(as_of)
        standalone = self._standalone(question, history)
        path = route(standalone, self._outlets())
        found, attributed = self._gather_routed(path, mode, as_of_d, exclude_docs, window)
        answer = Answer(
            question=question,
            standalone_question=standalone,
            text="",
            mode=mode,
            sources=found.scored,
            timings=Timings(retrieval_s=time.perf_counter() - started),
            confidence=round(found.decision.probability, 4),
            as_of=as_of_d.isoformat(),
            generator_problem=problem,
        )
        if attributed is not None:
            answer.sentences, answer.citations = attributed
            answer.text = render_answer(answer.sentences)
            answer.quoted_because = "reporting_question"
        elif not found.decision.answer:
            reason = (found.decision.reason or "evidence too weak") + scope_note(path.outlet)
            abstain(answer, reason, self.prompts)
        elif because := self._quote_reason(mode, problem, standalone, found.evidence):
            quote(answer, found.evidence, because, self.settings, self.prompts)
        else:
            writer = AnswerWriter(
                self.generator, self.verifier, self.settings, self.prompts, confident=self.decision.confident
            )
            writer.write(answer, found.evidence, found.decision, started, on_token, should_stop)
        answer.timings.total_s = time.perf_counter() - started
        return answer

    def _mode(self, mode: str | None) -> tuple[Mode, str | None]:
        """The mode answers are made in, and why the generator is missing when generate mode has to quote."""
        mode = check_mode(mode or self.settings.mode)
        if mode == "generate" and self.generator is None:
            if not self.generator_problem:
                raise ModelMissingError("no generator is loaded; use --mode extractive or configure RAG_GGUF_PATH")
            return "extractive", self.generator_problem
        return mode, None

    def _standalone(self, question: str, history: list[ChatTurn] | None) -> str:
        history = check_history(self.settings, history)
        # A model whose drafts were measured not to survive is not asked to reword the question either.
        rewriter = self.generator if self.settings.rewrite_with_model and self.drafts.draft else None
        return rewrite_followup(question, history, generator=rewriter, prompts=self.prompts)

    def _gather_routed(
        self, path: Route, mode: Mode, as_of: date, exclude_docs: frozenset[str], window: dict
    ) -> tuple[Gathered, tuple[list[AnswerSentence], list[Citation]] | None]:
        """Retrieve and judge what the route asks; a provenance question whose articles have no such field on
        record is asked again of the text."""
        if path.outlet:
            others = {d.doc_id for d in self.index.manifest.documents.values() if d.source != path.outlet}
            exclude_docs = exclude_docs | others
        found = self.gather(path.query, mode=mode, as_of=as_of, exclude_docs=exclude_docs, **window)
        attributed = self._attribute(found, path.asked) if path.asked else None
        if path.asked and found.decision.answer and attributed is None:
            found = self.gather(path.standalone, mode=mode, as_of=as_of, exclude_docs=exclude_docs, **window)
        return found, attributed

    def _quote_reason(self, mode: Mode, problem: str | None, standalone: str, evidence: Evidence) -> QuoteReason | None:
        """Why this answer is quoted rather than drafted by the model, or None to ask the model."""
        if problem:
            return "no_generator"
        if mode == "extractive":
            return "extractive_mode"
        if is_timeline(standalone):
            return "timeline"
        # Quote at once, without the seconds of generation, when this model's drafts were measured to lose to
        # quoting (rag/models/drafting.py), or when the question asks who/when/where/how many and a sentence
        # states that kind of answer: the sentence is the answer, and a small model rewording it only adds ways
        # to be wrong.
        if not self.drafts.draft:
            return "drafts_measured_weak"
        if self.settings.quote_typed_answers and states_typed_answer(evidence):
            return "typed_answer"
        return None

    def gather(
        self,
        standalone: str,
        *,
        mode: Mode,
        top_k: int | None,
        since: date | None,
        until: date | None,
        as_of: date,
        exclude_docs: frozenset[str] = frozenset(),
    ) -> Gathered:
        """Retrieve, select evidence and decide: everything before an answer is written (also what `rag
        calibrate` measures, so the decision is fitted on exactly what it later sees)."""
        frame = resolve(standalone, as_of)
        query_vector = self.embedder.embed([standalone])[0]
        retriever = self.retriever
        scored = retriever.search(
            standalone,
            top_k=top_k,
            since=since,
            until=until,
            query_vector=query_vector,
            frame=frame,
            exclude_docs=exclude_docs,
        )
        count = self.generator.count_tokens if self.generator is not None and mode == "generate" else None
        idf = retriever.index.lexical.idf
        evidence = select_evidence(
            standalone,
            scored,
            self.embedder,
            self.settings,
            **({"count_tokens": count} if count else {}),
            query_vector=query_vector,
            idf=idf,
        )
        date_sentences(evidence.sentences, scored, frame)
        self.read(evidence)
        return Gathered(scored=scored, evidence=evidence, decision=self.decide(evidence, scored, frame, idf))

    def read(self, evidence: Evidence) -> None:
        """The reader scores the best few sentences (by word and cosine match): they are where an answer is."""
        if self.reader is None or not evidence.sentences:
            return
        titles = {sp.passage.passage_id: sp.passage.meta.title for sp in evidence.sources}
        best = sorted(evidence.sentences, key=lambda s: -standing(s))[: self.settings.reader_sentences]
        scores = self.reader.score(evidence.question, [reader_input(titles.get(s.passage_id), s.text) for s in best])
        for sentence, p in zip(best, scores):
            sentence.reader = p
        evidence.reader_weight = self.settings.reader_rank_weight

    def decide(self, evidence: Evidence, scored: list[ScoredPassage], frame, idf) -> Decision:
        return decide(self.decision, evidence, scored, frame, idf, threshold=self.settings.answer_threshold)

    def _outlets(self) -> set[str]:
        """The outlets of the indexed articles, once per manifest (a commit, or a replica's reload, brings a new
        one)."""
        manifest = self.index.manifest
        if self._outlets_of[0] is not manifest:
            self._outlets_of = (manifest, {d.source for d in manifest.documents.values() if d.source})
        return self._outlets_of[1]

    def _attribute(self, found: Gathered, asked: ProvenanceAsk) -> tuple[list[AnswerSentence], list[Citation]] | None:
        """Attribute the claim when the decision stands by it, or when one retrieved headline states it."""
        evidence, kind = found.evidence, question_type(found.evidence.question)
        key = lambda s: ranking_key(s, kind, evidence.question, evidence.reader_weight)
        doc = headline_article(asked.claim, found.scored, self.retriever.index.lexical.idf)
        if found.decision.answer:
            # "The article about X" is one article: the one headlined X, when there is one. An outlet that
            # reported X may be one of several, so the headlined article only comes first.
            if doc and asked.field != "source":
                return attribute(evidence, asked, key, only_doc=doc) or attribute(evidence, asked, key)
            return attribute(evidence, asked, key, first_doc=doc)
        return attribute(evidence, asked, key, only_doc=doc) if doc else None

    def build_messages(self, evidence: Evidence) -> list[dict[str, str]]:
        return build_messages(evidence, self.settings, self.prompts)


def reader_kind(reader: Reader | None) -> str | bool:
    """Which packaged decision model a reader's scores go with ("reader" for a fake without a kind)."""
    return getattr(reader, "kind", "reader") if reader is not None else False
