"""Asking the model: the prompt built from the best evidence sentences, the streamed draft, and its verification
sentence by sentence against the quotes it cites. What fails verification never reaches the reader."""

from __future__ import annotations

import time
from collections.abc import Callable

from rag.answer.compose import abstain, quote
from rag.answer.decision import Decision
from rag.answer.quoting import extract_sentences, ranking_key
from rag.core.settings import Settings
from rag.core.types import Answer, AnswerSentence, Evidence
from rag.models.generator import Generator
from rag.models.prompts import PromptSet
from rag.text.answer_types import question_type
from rag.verify.citations import CitationBuilder, CitationVerifier, render_answer

TokenSink = Callable[[str], None]
StopCheck = Callable[[], bool]
ABSTAIN_MARKER = "articles don't say"


def build_messages(evidence: Evidence, settings: Settings, prompts: PromptSet) -> list[dict[str, str]]:
    # The best few sentences only, in the order the sources are numbered: a small model copies from them.
    kind = question_type(evidence.question)
    best = sorted(evidence.sentences, key=lambda s: -ranking_key(s, kind, evidence.question, evidence.reader_weight))
    chosen = {(s.passage_id, s.start) for s in best[: settings.generation_sentences]}
    blocks = []
    for number, sp in enumerate(evidence.sources, start=1):
        p = sp.passage
        texts = [
            s.text for s in evidence.sentences if s.passage_id == p.passage_id and (s.passage_id, s.start) in chosen
        ]
        if not texts:
            continue
        blocks.append(
            prompts.source.render(
                number=number,
                title=p.meta.title or p.doc_id,
                source=p.meta.source or "unknown source",
                date=p.meta.date or "undated",
                text=" ".join(texts),
            )
        )
    user = prompts.answer.render(sources="\n\n".join(blocks), question=evidence.question)
    return [{"role": "system", "content": prompts.system.render()}, {"role": "user", "content": user}]


class AnswerWriter:
    """One model-written answer: stream the draft, keep the sentences the quotes support, else quote or refuse."""

    def __init__(
        self,
        generator: Generator,
        verifier: CitationVerifier,
        settings: Settings,
        prompts: PromptSet,
        *,
        confident: float,
    ):
        self.generator = generator
        self.verifier = verifier
        self.settings = settings
        self.prompts = prompts
        self.confident = confident  # the decision's probability above which evidence overrules a model's refusal

    def write(
        self,
        answer: Answer,
        evidence: Evidence,
        verdict: Decision,
        started: float,
        on_token: TokenSink | None = None,
        should_stop: StopCheck | None = None,
    ) -> Answer:
        raw = self._stream(answer, evidence, started, on_token, should_stop)
        refused = ABSTAIN_MARKER in raw.lower().replace("’", "'")
        builder = CitationBuilder(evidence.sources)
        sentences, _ = ([], []) if refused else self.verifier.verify(raw, evidence, builder)
        if any(s.supported for s in sentences):
            if self.settings.anchor_quote:
                sentences = self._anchor(sentences, evidence, builder)
            answer.sentences, answer.citations = sentences, builder.citations
            answer.text = render_answer(sentences)
            answer.written_by, answer.quoted_because = "model", None
            return answer
        if refused and verdict.probability < self.confident:
            # The model read the evidence and found no answer, and the evidence is not strong enough on its
            # own measure to overrule it: an honest refusal beats quoting a sentence that may not answer.
            reason = f"the model found no answer in the closest passages (confidence {verdict.probability:.2f})"
            return abstain(answer, reason, self.prompts)
        # The model said nothing the evidence supports although the evidence is strong: quote the evidence
        # instead of refusing a question the articles do answer.
        return quote(answer, evidence, "draft_unsupported", self.settings, self.prompts)

    def _stream(
        self,
        answer: Answer,
        evidence: Evidence,
        started: float,
        on_token: TokenSink | None,
        should_stop: StopCheck | None,
    ) -> str:
        gen_start = time.perf_counter()
        pieces: list[str] = []
        stream = self.generator.stream(
            build_messages(evidence, self.settings, self.prompts),
            max_tokens=self.settings.max_new_tokens,
            temperature=self.settings.temperature,
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
        timings = answer.timings
        timings.generation_s = time.perf_counter() - gen_start
        timings.prompt_tokens = self.generator.usage.prompt_tokens
        timings.completion_tokens = self.generator.usage.completion_tokens
        if timings.generation_s > 0 and timings.completion_tokens:
            timings.tokens_per_s = timings.completion_tokens / timings.generation_s
        return raw

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
