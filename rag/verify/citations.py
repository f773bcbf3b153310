"""Citations checked, not trusted: every answer sentence is matched to the evidence sentence that supports it.

A sentence is supported when its embedding is close to a source sentence and its content words overlap it,
and every number and name it states appears in the cited evidence. The model's own [n] marker is kept only
when that source supports the sentence; otherwise it is corrected to the source that does, or the sentence
is dropped (or marked, by setting). Thresholds come from bench/calibrate.py (docs/calibration.md).
"""

from __future__ import annotations

import re

import numpy as np

from rag.core.settings import Settings
from rag.core.types import AnswerSentence, Citation, Evidence, EvidenceSentence, Quote, ScoredPassage, StoryCopy
from rag.models.embedding import Embedder
from rag.text.patterns import names_in, numbers_in
from rag.text.sentences import split_sentences
from rag.text.tokens import content_terms, stem
from rag.verify.support import DENSE_SHARE, META_WORDS, coverage, term_present, word_vocabulary

_MARKER = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# Markers that open a sentence: the prompt asks for "[1]" after each sentence, so "A. [1] B." cites A, not B.
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])+")
# Lead-ins small models put before an answer; they carry no claim.
_FILLER = re.compile(
    r"^\s*(?:the\s+)?(?:short\s+)?answer(?:\s+is)?\s*[:\-]\s*|^\s*(?:according to the (?:sources?|articles?)|based on "
    r"the (?:sources?|articles?))[,:]?\s*",
    re.I,
)


def strip_markers(text: str) -> tuple[str, list[int]]:
    numbers = [int(n) for m in _MARKER.finditer(text) for n in m.group(1).split(",")]
    claim = _FILLER.sub("", _MARKER.sub("", text)).strip()
    return (claim[:1].upper() + claim[1:]) if claim else claim, numbers


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Generated text as (claim, marker numbers) per sentence, markers credited to the sentence they follow."""
    claims: list[tuple[str, list[int]]] = []
    for start, end in split_sentences(text):
        segment = text[start:end]
        lead = _LEADING_MARKERS.match(segment)
        if lead and claims:
            claims[-1][1].extend(strip_markers(lead.group(0))[1])
            segment = segment[lead.end() :]
            if not segment.strip():
                continue
        claims.append(strip_markers(segment))
    return claims


def adds_information(claim: str, question: str) -> bool:
    """True when the claim says something the question did not already say."""
    return bool(content_terms(claim) - content_terms(question) - {stem(w) for w in META_WORDS})


def support_score(
    claim_vec: np.ndarray, claim_terms: set[str], source_vec: np.ndarray, source_terms: set[str]
) -> float:
    return float(DENSE_SHARE * float(claim_vec @ source_vec) + (1 - DENSE_SHARE) * coverage(claim_terms, source_terms))


def facts_grounded(claim: str, evidence_text: str) -> bool:
    """Numbers and names in a claim must appear in the text cited for it."""
    if not numbers_in(claim) <= numbers_in(evidence_text):
        return False
    vocab = word_vocabulary(evidence_text)
    return all(term_present(name, vocab) for name in names_in(claim))


class CitationVerifier:
    def __init__(self, embedder: Embedder, settings: Settings):
        self.embedder = embedder
        self.threshold = settings.support_threshold
        self.policy = settings.unsupported_policy

    def best_support(self, claims: list[str], sources: list[EvidenceSentence]) -> list[list[tuple[int, float]]]:
        """For each claim, (source index, score) of every source sentence, best first."""
        if not claims or not sources:
            return [[] for _ in claims]
        vecs = self.embedder.embed(claims + [s.text for s in sources])
        claim_vecs, source_vecs = vecs[: len(claims)], vecs[len(claims) :]
        source_terms = [content_terms(s.text) for s in sources]
        out = []
        for cv, claim in zip(claim_vecs, claims):
            terms = content_terms(claim)
            scores = [(j, support_score(cv, terms, source_vecs[j], source_terms[j])) for j in range(len(sources))]
            scores.sort(key=lambda js: -js[1])
            out.append(scores)
        return out

    def supports(self, claim: str, quote: str) -> tuple[bool, float]:
        """The check the eval harness replays on shown citations."""
        scores = self.best_support([claim], [EvidenceSentence(text=quote, doc_id="", passage_id="", start=0, end=0)])[0]
        score = scores[0][1] if scores else 0.0
        return score >= self.threshold and facts_grounded(claim, quote), score

    def verify(
        self, text: str, evidence: Evidence, builder: CitationBuilder | None = None
    ) -> tuple[list[AnswerSentence], list[Citation]]:
        """Split generated text into sentences, attach checked citations, drop or mark the unsupported."""
        numbered = dict(enumerate(evidence.sources, start=1))
        claims, markers = [], []
        for claim, numbers in split_claims(text):
            if not adds_information(claim, evidence.question):
                continue  # a bare marker, filler, or the question restated
            claims.append(claim)
            markers.append(numbers)
        ranked = self.best_support(claims, evidence.sentences)
        builder = builder or CitationBuilder(evidence.sources)
        sentences: list[AnswerSentence] = []
        for claim, model_numbers, scores in zip(claims, markers, ranked):
            chosen = self._choose(claim, model_numbers, scores, evidence, numbered)
            if chosen is None:
                if self.policy == "mark":
                    best = scores[0][1] if scores else 0.0
                    sentences.append(AnswerSentence(text=claim, citations=[], supported=False, support=best))
                continue
            j, score = chosen
            number = builder.cite(evidence.sentences[j], score)
            sentences.append(AnswerSentence(text=claim, citations=[number], supported=True, support=score))
        return sentences, builder.citations

    def _choose(self, claim, model_numbers, scores, evidence: Evidence, numbered) -> tuple[int, float] | None:
        passing = [
            (j, s) for j, s in scores if s >= self.threshold and facts_grounded(claim, evidence.sentences[j].text)
        ]
        if not passing:
            return None
        # Honour the model's marker when its source really supports the sentence; otherwise take the best.
        wanted = {numbered[n].passage.passage_id for n in model_numbers if n in numbered}
        for j, s in passing:
            if evidence.sentences[j].passage_id in wanted:
                return j, s
        return passing[0]


class CitationBuilder:
    """Numbers citations in order of first use: one number per passage, with every sentence quoted from it.

    Numbered per sentence, two sentences of one passage became [1] and [2] and the sources list showed the
    same article twice; a reader counts sources, so the number follows the passage.
    """

    def __init__(self, sources: list[ScoredPassage]):
        self._meta = {sp.passage.passage_id: sp.passage.meta for sp in sources}
        self._copies = {sp.passage.passage_id: sp.also_in for sp in sources}
        self._by_passage: dict[str, Citation] = {}
        self.citations: list[Citation] = []

    def cite(self, sentence: EvidenceSentence, support: float) -> int:
        quote = Quote(text=sentence.text, start=sentence.start, end=sentence.end, support=support)
        citation = self._by_passage.get(sentence.passage_id)
        if citation is not None:
            if all(q.start != quote.start for q in citation.quotes):
                citation.quotes.append(quote)
            return citation.number
        meta = self._meta.get(sentence.passage_id)
        citation = Citation(
            number=len(self.citations) + 1,
            doc_id=sentence.doc_id,
            passage_id=sentence.passage_id,
            title=meta.title if meta else None,
            source=meta.source if meta else None,
            date=meta.date if meta else None,
            url=meta.url if meta else None,
            quote=quote.text,
            start=quote.start,
            end=quote.end,
            support=support,
            quotes=[quote],
            also_in=list(self._copies.get(sentence.passage_id, [])),
        )
        self._by_passage[sentence.passage_id] = citation
        self.citations.append(citation)
        return citation.number


def copies_line(copies: list[StoryCopy]) -> str:
    """The other outlets and dates that carried a cited story, for a reader: "also in: AP, 2023-06-15; ..."."""
    return "also in: " + "; ".join(
        f"{c.source or c.title or c.doc_id}, {c.date or 'undated'} ({c.doc_id})" for c in copies
    )


def without_markers(text: str) -> str:
    """A sentence without the reference markers in it. Ours are appended after a sentence, so a marker inside one
    is the article's own ("the budget office [3].") and would read as, and on the web page link to, our source 3."""
    return _MARKER.sub("", text)


def render_answer(sentences: list[AnswerSentence]) -> str:
    parts = []
    for s in sentences:
        text = without_markers(s.text).rstrip()
        if s.supported:
            parts.append(text + "".join(f" [{n}]" for n in s.citations))
        else:
            parts.append(text + " [unsupported]")
    return " ".join(parts)
