"""A question's whole path: rewrite -> retrieve -> select evidence -> generate or extract -> verify -> Answer."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from rag.answer.decision import Decision, DecisionModel, decide, load_model
from rag.answer.evidence import date_sentences, select_evidence, standing
from rag.answer.provenance import ProvenanceAsk, attribute, headline_article, outlet_scope, parse_provenance
from rag.answer.quoting import extract_sentences, is_timeline, ranking_key, states_typed_answer, timeline_sentences
from rag.answer.rewrite import rewrite_followup
from rag.core.errors import BadInputError, ModelMissingError, TooLargeError, VectorStoreError
from rag.core.settings import Settings
from rag.core.types import Answer, AnswerSentence, ChatTurn, Citation, Evidence, Mode, ScoredPassage, Timings
from rag.models.drafting import DraftPolicy, draft_policy
from rag.models.embedding import Embedder
from rag.models.generator import Generator
from rag.models.prompts import PromptSet
from rag.models.reader import Reader, load_reader, reader_input
from rag.search.periods import parse_date
from rag.search.retriever import Retriever
from rag.storage.index import Index
from rag.text.answer_types import question_type
from rag.text.timeframe import parse_as_of, resolve
from rag.verify.citations import CitationBuilder, CitationVerifier, render_answer

TokenSink = Callable[[str], None]
StopCheck = Callable[[], bool]
ABSTAIN_MARKER = "articles don't say"


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
        self.decision = decision or load_model(settings.index_dir, settings.decision_model, reader=reader is not None)
        self.verifier = CitationVerifier(embedder, settings)
        self.generator_problem: str | None = None  # why generate mode falls back to extractive, if it does
        self.drafts = DraftPolicy(
            draft=True
        )  # from_settings reads the model's measured record (rag/models/drafting.py)
        self._outlets_of: tuple[object, set[str]] = (None, set())
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
        decision = load_model(settings.index_dir, settings.decision_model, reader=reader is not None)
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
        mode = mode or self.settings.mode
        if mode not in ("generate", "extractive"):
            raise BadInputError(f"mode must be 'generate' or 'extractive', got {mode!r}")
        since_d, until_d = parse_date(since, field="since"), parse_date(until, field="until")
        as_of_d, _ = parse_as_of(as_of)
        history = (history or [])[-self.settings.max_history_turns :] if self.settings.max_history_turns else []
        fallback = None
        if mode == "generate" and self.generator is None:
            if not self.generator_problem:
                raise ModelMissingError("no generator is loaded; use --mode extractive or configure RAG_GGUF_PATH")
            mode, fallback = "extractive", f"extractive: {self.generator_problem}"

        # A model whose drafts were measured not to survive is not asked to reword the question either.
        rewriter = self.generator if self.settings.rewrite_with_model and self.drafts.draft else None
        standalone = rewrite_followup(question, history, generator=rewriter, prompts=self.prompts)
        asked, scope = self._route(standalone)
        if scope:
            exclude_docs = exclude_docs | {
                d.doc_id for d in self.index.manifest.documents.values() if d.source != scope[1]
            }
        query = asked.claim if asked else scope[0] if scope else standalone
        found = self.gather(
            query, mode=mode, top_k=top_k, since=since_d, until=until_d, as_of=as_of_d, exclude_docs=exclude_docs
        )
        attributed = self._attribute(found, asked) if asked else None
        if asked and found.decision.answer and attributed is None:  # no such metadata on record: the text must say
            found = self.gather(
                standalone,
                mode=mode,
                top_k=top_k,
                since=since_d,
                until=until_d,
                as_of=as_of_d,
                exclude_docs=exclude_docs,
            )
        evidence, verdict = found.evidence, found.decision
        timings = Timings(retrieval_s=time.perf_counter() - started)
        answer = Answer(
            question=question,
            standalone_question=standalone,
            text="",
            mode=mode,
            sources=found.scored,
            timings=timings,
            fallback=fallback,
            confidence=round(verdict.probability, 4),
            as_of=as_of_d.isoformat(),
        )

        if attributed is not None:
            answer.sentences, answer.citations = attributed
            answer.text = render_answer(answer.sentences)
            answer.fallback = "quoted" if mode == "generate" else None
            return self._finish(answer, started)
        if not verdict.answer:
            within = (
                f" (only {scope[1]}{'’' if scope[1].endswith('s') else '’s'} articles were searched, as the question "
                "asks)"
                if scope
                else ""
            )
            return self._finish(self._abstain(answer, (verdict.reason or "evidence too weak") + within), started)
        if mode == "extractive" or is_timeline(standalone):
            return self._finish(self._extract(answer, evidence), started)
        # Quote at once, without the seconds of generation, when this model's drafts were measured to lose to
        # quoting (rag/models/drafting.py), or when the question asks who/when/where/how many and a sentence states that
        # kind of answer: the sentence is the answer, and a small model rewording it only adds ways to be wrong.
        if not self.drafts.draft or (self.settings.quote_typed_answers and states_typed_answer(evidence)):
            answer.fallback = "quoted"
            return self._finish(self._extract(answer, evidence), started)
        return self._finish(self._generate(answer, evidence, verdict, started, on_token, should_stop), started)

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

    def _abstain(self, answer: Answer, reason: str) -> Answer:
        answer.abstained = True
        answer.abstain_reason = reason
        answer.text = self.prompts.abstain.render(topic="")
        answer.sentences, answer.citations = [], []
        return answer

    def _extract(self, answer: Answer, evidence: Evidence) -> Answer:
        """Quote the best sentences verbatim: faithful by construction, and no model needed."""
        if is_timeline(evidence.question):
            picked = timeline_sentences(
                evidence,
                {sp.passage.passage_id: sp.passage.meta.date for sp in evidence.sources},
                self.settings.extractive_max_sentences + 2,
            )
        else:
            picked = extract_sentences(evidence, self.settings.extractive_max_sentences)
        if not picked:
            return self._abstain(answer, "no sentence of the evidence answers the question")
        builder = CitationBuilder(evidence.sources)
        answer.sentences = [
            AnswerSentence(text=s.text, citations=[builder.cite(s, s.relevance)], supported=True, support=s.relevance)
            for s in picked
        ]
        answer.citations = builder.citations
        answer.text = render_answer(answer.sentences)
        return answer

    def _route(self, standalone: str) -> tuple[ProvenanceAsk | None, tuple[str, str] | None]:
        """What a question asks of the reporting, and the outlet it is scoped to: "Which outlet reported X?" is
        X retrieved and judged, answered from the reporting article's record; "..., according to Euractiv?" is
        asked without the phrase, of that outlet's articles only (scope: the question to ask, the outlet)."""
        asked = parse_provenance(standalone)
        if asked is None:
            return None, outlet_scope(standalone, self._outlets())
        if asked.outlet is None:
            return asked, None
        named = self._outlet_named(asked.outlet)
        # "When did NATO publish its report on X": a publisher that is no indexed outlet; the text must say.
        return (asked, (asked.claim, named)) if named else (None, outlet_scope(standalone, self._outlets()))

    def _outlets(self) -> set[str]:
        """The outlets of the indexed articles, once per manifest (a commit, or a replica's reload, brings a new
        one)."""
        manifest = self.index.manifest
        if self._outlets_of[0] is not manifest:
            self._outlets_of = (manifest, {d.source for d in manifest.documents.values() if d.source})
        return self._outlets_of[1]

    def _outlet_named(self, name: str) -> str | None:
        """The indexed outlet a question names ("the Libertarian Institute"), as recorded."""
        wanted = name.lower().removeprefix("the ")
        return next((o for o in self._outlets() if o.lower().removeprefix("the ") == wanted), None)

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
        # The best few sentences only, in the order the sources are numbered: a small model copies from them.
        kind = question_type(evidence.question)
        best = sorted(
            evidence.sentences, key=lambda s: -ranking_key(s, kind, evidence.question, evidence.reader_weight)
        )
        chosen = {(s.passage_id, s.start) for s in best[: self.settings.generation_sentences]}
        blocks = []
        for number, sp in enumerate(evidence.sources, start=1):
            p = sp.passage
            texts = [
                s.text for s in evidence.sentences if s.passage_id == p.passage_id and (s.passage_id, s.start) in chosen
            ]
            if not texts:
                continue
            blocks.append(
                self.prompts.source.render(
                    number=number,
                    title=p.meta.title or p.doc_id,
                    source=p.meta.source or "unknown source",
                    date=p.meta.date or "undated",
                    text=" ".join(texts),
                )
            )
        user = self.prompts.answer.render(sources="\n\n".join(blocks), question=evidence.question)
        return [{"role": "system", "content": self.prompts.system.render()}, {"role": "user", "content": user}]

    def _generate(
        self,
        answer: Answer,
        evidence: Evidence,
        verdict: Decision,
        started: float,
        on_token: TokenSink | None,
        should_stop: StopCheck | None,
    ) -> Answer:
        assert self.generator is not None
        messages = self.build_messages(evidence)
        gen_start = time.perf_counter()
        pieces: list[str] = []
        stream = self.generator.stream(
            messages, max_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature
        )
        try:
            for piece in stream:
                if not pieces:
                    answer.timings.ttft_s = time.perf_counter() - started
                pieces.append(piece)
                if on_token:
                    on_token(piece)
                if should_stop and should_stop():
                    break
        finally:
            stream.close()
        raw = "".join(pieces).strip()
        answer.raw_generation = raw
        answer.timings.generation_s = time.perf_counter() - gen_start
        answer.timings.prompt_tokens = self.generator.usage.prompt_tokens
        answer.timings.completion_tokens = self.generator.usage.completion_tokens
        if answer.timings.generation_s > 0 and answer.timings.completion_tokens:
            answer.timings.tokens_per_s = answer.timings.completion_tokens / answer.timings.generation_s

        refused = ABSTAIN_MARKER in raw.lower().replace("’", "'")
        builder = CitationBuilder(evidence.sources)
        sentences, citations = ([], []) if refused else self.verifier.verify(raw, evidence, builder)
        if any(s.supported for s in sentences):
            if self.settings.anchor_quote:
                sentences = self._anchor(sentences, evidence, builder)
            answer.sentences, answer.citations = sentences, builder.citations
            answer.text = render_answer(sentences)
            return answer
        if refused and verdict.probability < self.decision.confident:
            # The model read the evidence and found no answer, and the evidence is not strong enough on its
            # own measure to overrule it: an honest refusal beats quoting a sentence that may not answer.
            return self._abstain(
                answer, f"the model found no answer in the closest passages (confidence {verdict.probability:.2f})"
            )
        # The model said nothing the evidence supports although the evidence is strong: quote the evidence
        # instead of refusing a question the articles do answer.
        answer.fallback = "extractive"
        return self._extract(answer, evidence)

    def _anchor(
        self, sentences: list[AnswerSentence], evidence: Evidence, builder: CitationBuilder
    ) -> list[AnswerSentence]:
        """Close a generated answer with the evidence sentence that best answers the question, quoted, unless
        the model's own sentences already rest on it: the small model's verified text is often a faithful
        but empty restatement ("The article discusses the discussions"), and the quote carries the fact."""
        best = extract_sentences(evidence, 1)
        if not best:
            return sentences
        top = best[0]
        cited = {(q.start, q.end) for c in builder.citations for q in c.quotes}
        if (top.start, top.end) in cited:
            return sentences
        number = builder.cite(top, top.relevance)
        return [*sentences, AnswerSentence(text=top.text, citations=[number], supported=True, support=top.relevance)]

    def _finish(self, answer: Answer, started: float) -> Answer:
        answer.timings.total_s = time.perf_counter() - started
        return answer


def check_question(settings: Settings, question: str) -> str:
    """The question as retrieval sees it: invisible characters gone, whitespace collapsed, at least one word."""
    if not isinstance(question, str) or not question.strip():
        raise BadInputError("the question is empty")
    if len(question) > settings.max_question_chars:
        raise TooLargeError(
            f"the question has {len(question)} characters; the limit is {settings.max_question_chars} "
            "(RAG_MAX_QUESTION_CHARS)"
        )
    # A lone surrogate (JSON "\ud800", undecodable argv bytes) survives the whole search and then fails
    # when the reply is encoded: refuse it here, where the caller can be told why.
    if any("\ud800" <= ch <= "\udfff" for ch in question):
        raise BadInputError("the question is not valid Unicode text (it holds an unpaired surrogate)")
    # Control and format characters (NUL, zero-width space, BOM) are invisible: they must neither count as
    # a question nor reach the tokenizers, where they would glue or split words.
    visible = "".join(ch for ch in question if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    if not visible.strip():
        raise BadInputError("the question is empty")
    if not re.search(r"[^\W_]", visible):
        raise BadInputError("the question has no words, only punctuation or symbols")
    return " ".join(visible.split())


def check_request(
    settings: Settings,
    question: str,
    *,
    mode: str | None = None,
    top_k: int | None = None,
    since: str | None = None,
    until: str | None = None,
    as_of: str | None = None,
) -> None:
    """Every check that needs neither model nor index, so a caller can refuse a bad request before loading them."""
    check_question(settings, question)
    parse_as_of(as_of)
    if mode is not None and mode not in ("generate", "extractive"):
        raise BadInputError(f"mode must be 'generate' or 'extractive', got {mode!r}")
    if top_k is not None and not 1 <= top_k <= settings.max_top_k:
        raise BadInputError(f"top_k must be between 1 and {settings.max_top_k}, got {top_k}")
    since_d, until_d = parse_date(since, field="since"), parse_date(until, field="until")
    if since_d and until_d and since_d > until_d:
        raise BadInputError(f"since {since_d} is after until {until_d}")
