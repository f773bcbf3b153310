"""Questions about the reporting itself: which outlet reported something, when, under what headline.

"Which outlet reported that NATO wants a Ukraine council?" is not answered by any sentence of the articles: the
sentence says what NATO wants, and the answer (Euractiv) is the article's metadata. Quoting the sentence alone
leaves the reader without the one thing asked, and the answer decision, fitted on questions answered by text,
judges "outlet" as a word the sentence lacks. So such a question is split: the claim ("NATO wants a Ukraine
council") is retrieved and judged like any question, and the answer names the outlet, date or headline of each
article whose sentence states the claim, quoting that sentence as the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rag.core.types import AnswerSentence, ArticleMeta, Citation, Evidence, EvidenceSentence, ScoredPassage, StoryCopy
from rag.text.timeframe import as_date
from rag.text.tokens import content_terms
from rag.verify.citations import CitationBuilder, without_markers
from rag.verify.support import IdfFn, coverage, question_terms

Field = Literal["source", "date", "title"]
SentenceKey = Callable[[EvidenceSentence], float]
# Phrases that scope a question to one outlet's reporting: removed from the question, which is then asked of that
# outlet's articles only. Not "before the Euractiv report": there the report is a point in time, not a scope.
_SCOPE_TEMPLATES = [
    r",?\s*(?i:according "
    r"to)\s+(?i:(?:the\s+)?(?:sources?|officials?|diplomats?|people)\s+(?:cited|quoted)\s+by\s+|(?:an?\s+|the\s+)?reports?\s+(?:by|in|from)\s+)?{outlet}\b",
    r",?\s*(?i:(?:as\s+)?reported\s+by)\s+{outlet}\b",
    r"\s*\b(?i:in|from)\s+(?i:the\s+|an?\s+)?{outlet}(?:'s|’s)?\s+(?i:article|report|story|piece|coverage)\b",
]
_OUTLET_VERB = r"^(?i:(?P<wh>what|how))\s+(?i:did|does|do)\s+{outlet}\s+(?i:report|say|write)\b"

# Not "agency" or "network" alone: "which agency reported the inflation figure?" asks for a statistics office the
# text names, not for the article's publisher.
_OUTLET = (
    r"(?:news |media |online )?(?:outlets?|newspapers?|papers?|publications?|news ?sites?|sites?|websites?|news "
    r"agency|news agencies|"
    r"broadcasters?|magazines?|news networks?|news organi[sz]ations?|wire services?|media)"
)
_REPORTED = (
    r"(?:first )?(?:reported|reports|report|wrote|writes|write|published|publishes|publish|carried|carries|covered|cove"
    r"rs|broke|ran|runs)"
)
_LEAD = r"(?:that |on |about |the (?:news|story|report|claim) (?:that|of|about) )?"
_PIECE = r"(?:article|report|story|piece|news item|dispatch)"
_PUBLISHED = r"(?:published|written|posted|released|put out|reported)"

# Ordered: the first pattern that matches decides. Each names the claim, the part retrieved and judged. No "who
# reported / wrote / published X": over SQuAD's 11,873 questions all 14 such asked for a person or body the text
# names ("Who wrote that imperialism is the highest stage of capitalism?"), never for the publisher.
_PATTERNS: list[tuple[Field, re.Pattern[str]]] = [
    ("source", re.compile(rf"^(?:which|what) {_OUTLET} {_REPORTED} {_LEAD}(?P<claim>.+)$", re.I)),
    (
        "source",
        re.compile(
            rf"^(?:in|on|by) (?:which|what) {_OUTLET} (?:was|were|is|are) (?P<claim>.+?) (?:first )?{_PUBLISHED}$", re.I
        ),
    ),
    ("source", re.compile(rf"^according to (?:which|what) {_OUTLET},? (?P<claim>.+)$", re.I)),
    (
        "source",
        re.compile(
            rf"^(?:which|what) {_OUTLET}(?:'s| is| was)? (?:the )?{_PIECE}s? (?:about|on|that|saying) "
            r"(?P<claim>.+?)(?: from| by| in)?$",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            rf"^when (?:was|were) (?:the |this |that |an? )?{_PIECE}s? (?:about|on|that|saying|reporting) "
            rf"(?P<claim>.+?) {_PUBLISHED}$",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            rf"^(?:on )?(?:what|which) (?:date|day) (?:was|were) (?:the |this |that |an? )?{_PIECE}s? "
            rf"(?:about|on|that|saying|reporting) (?P<claim>.+?) {_PUBLISHED}$",
            re.I,
        ),
    ),
    ("date", re.compile(r"^when was it (?:first )?(?:reported|written) that (?P<claim>.+)$", re.I)),
    (
        "date",
        re.compile(
            rf"^when did (?:the )?(?P<outlet>\S+(?: \S+){{0,3}}?) (?:publish|run|post|write|release|put out) "
            rf"(?:its|their|the|an?) {_PIECE}s? (?:about|on|that|saying) (?P<claim>.+)$",
            re.I,
        ),
    ),
    (
        "title",
        re.compile(
            rf"^what (?:is|was|were) the (?:title|headline)s? of the {_PIECE}s? (?:about|on|that|saying|reporting) "
            r"(?P<claim>.+)$",
            re.I,
        ),
    ),
    (
        "title",
        re.compile(
            rf"^(?:which|what) {_PIECE}s? "
            r"(?:reported|reports|said|says|mentioned|mentions|covered|covers|described|describes) "
            rf"{_LEAD}(?P<claim>.+)$",
            re.I,
        ),
    ),
]
_NAME = r"(?:[A-Z][\w.&'’-]*)(?: (?:[A-Z][\w.&'’-]*|of|de)){0,3}"
_CREDIT = re.compile(
    rf"\breported by (?:the )?(?P<by>{_NAME})|\b(?P<named>{_NAME}) (?:reported|reports|writes|wrote)\b"
)
_NOT_OUTLETS = frozenset("He She It They We I You The This That These Those A An Officials Sources".split())
# A headline holding this share of the claim's (idf-weighted) terms, and at least this many terms, names the article.
HEADLINE_MATCH = 0.8
HEADLINE_TERMS = 3
# Another article that states the claim nearly as well is named too: "which outlet" may have several answers.
NEAR_BEST = 0.9
MAX_ARTICLES = 3


@dataclass(frozen=True)
class ProvenanceAsk:
    """A question about the reporting: what it asks for, and the claim whose reporting it asks about."""

    field: Field
    claim: str
    outlet: str | None = None  # "when did Reuters publish its story on X": the claim is looked for in its articles


def parse_provenance(question: str) -> ProvenanceAsk | None:
    text = re.sub(r"\s+", " ", question).strip().rstrip("?.! ").strip()
    for field, pattern in _PATTERNS:
        if (m := pattern.match(text)) and len(claim := m.group("claim").strip(" ,")) >= 8:
            outlet = m.groupdict().get("outlet")
            return ProvenanceAsk(field=field, claim=claim[0].upper() + claim[1:] + "?", outlet=outlet)
    return None


def reporting_sentences(
    sentences: list[EvidenceSentence], key: SentenceKey, limit: int = MAX_ARTICLES
) -> list[EvidenceSentence]:
    """The best sentence of each article that states the claim about as well as the best one does (`key`: the
    order the extractive answer uses)."""
    ranked = sorted(((key(s), s) for s in sentences), key=lambda ks: -ks[0])
    if not ranked:
        return []
    floor = NEAR_BEST * ranked[0][0]
    picked: dict[str, EvidenceSentence] = {}
    for k, s in ranked:
        if k < floor or len(picked) >= limit:
            break
        picked.setdefault(s.doc_id, s)
    return list(picked.values())


def credits(sentence: str) -> list[str]:
    """Outlets the sentence itself credits ("..., Bloomberg reported"): an aggregator's article often reports
    another outlet's story, and the reader asking "which outlet" should learn both."""
    named = (m.group("by") or m.group("named") for m in _CREDIT.finditer(sentence))
    return list(dict.fromkeys(n for n in named if n.split()[0] not in _NOT_OUTLETS))


def _day(value: str | None) -> str | None:
    d = as_date(value)
    return f"{d.day} {d:%B} {d.year}" if d else None


def attribution(
    ask: ProvenanceAsk, meta: ArticleMeta | None, sentence: str, copies: Sequence[StoryCopy] = ()
) -> tuple[str, str]:
    """One answer line and its lead: the article's record that was asked for and a colon (the lead), then the
    quoted sentence stating the claim. `copies`: other outlets' copies of the story, folded into this article."""
    lead = _lead(ask, meta or ArticleMeta(), sentence, copies)
    return f"{lead} “{sentence.strip()}”", lead


def _lead(ask: ProvenanceAsk, meta: ArticleMeta, sentence: str, copies: Sequence[StoryCopy]) -> str:
    day, outlet = _day(meta.date), meta.source
    if ask.field == "date":
        if day is None:
            return f"The article that reports it carries no date{f' ({outlet})' if outlet else ''}:"
        return f"{outlet or 'The article'} published it on {day}:"
    if ask.field == "title":
        if not meta.title:
            return f"The article that reports it has no headline on record{f' ({outlet})' if outlet else ''}:"
        where = ", ".join(x for x in (outlet, day) if x)
        return f"“{meta.title}”{f' ({where})' if where else ''} reports it:"
    if outlet is None:
        named = f"the article “{meta.title}”" if meta.title else "an article"
        return f"The outlet is not on record; {named}{f' ({day})' if day else ''} reports it:"
    carried = [
        f"{c.source}{f' on {d}' if (d := _day(c.date)) else ''}"
        for c in copies
        if c.source and c.source.lower() != outlet.lower()
    ]
    also = f" (also carried by {', '.join(dict.fromkeys(carried))})" if carried else ""
    credited = [o for o in credits(sentence) if o.lower() != outlet.lower()]
    citing = f", citing {' and '.join(credited)}" if credited else ""
    return f"{outlet} reported it{f' on {day}' if day else ''}{also}{citing}:"


def _held(terms: set[str], headline: set[str]) -> set[str]:
    """The claim's terms a headline holds, forms of one word counted as one: the stemmer leaves "debating" and
    "debates" apart ("debati", "debat"), and a reader paraphrasing a headline changes just such endings. Five
    letters in common are asked of both, so short words still need to be equal."""
    stems = {h[:5] for h in headline if len(h) >= 5}
    return {t for t in terms if t in headline or (len(t) >= 5 and t[:5] in stems)}


def headline_article(claim: str, scored: list[ScoredPassage], idf: IdfFn | None) -> str | None:
    """The one retrieved article whose headline holds nearly all of the claim's terms ("the article about NATO
    debating ways to boost ties"): readers name an article by its headline, whose words its sentences may lack."""
    terms = question_terms(claim)
    if len(terms) < HEADLINE_TERMS:
        return None
    best: dict[str, float] = {}
    for sp in scored:
        if sp.passage.meta.title:
            best[sp.passage.doc_id] = coverage(terms, _held(terms, content_terms(sp.passage.meta.title)), idf)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] < HEADLINE_MATCH or (len(ranked) > 1 and ranked[1][1] >= ranked[0][1]):
        return None
    return ranked[0][0]


def attribute(
    evidence: Evidence,
    ask: ProvenanceAsk,
    key: SentenceKey,
    *,
    only_doc: str | None = None,
    first_doc: str | None = None,
) -> tuple[list[AnswerSentence], list[Citation]] | None:
    """The answer's lines, each citing the sentence it quotes. None when no sentence states the claim, or when
    no article stating it has the asked field on record: the question is then about what the text says (an
    encyclopedia page has no publisher, and "which newspaper published the Pentagon Papers?" is in its text)."""
    picked = reporting_sentences([s for s in evidence.sentences if only_doc in (None, s.doc_id)], key)
    if first_doc and first_doc not in {s.doc_id for s in picked}:
        # The headlined article's best sentence, even below the others': its headline is the match.
        own = [s for s in evidence.sentences if s.doc_id == first_doc]
        picked = ([max(own, key=key)] if own else []) + picked[: MAX_ARTICLES - 1 if own else MAX_ARTICLES]
    picked.sort(key=lambda s: s.doc_id != first_doc)  # stable: the rest keep their order
    metas = {sp.passage.passage_id: sp.passage.meta for sp in evidence.sources}
    if not any(getattr(metas.get(s.passage_id) or ArticleMeta(), ask.field) for s in picked):
        return None
    builder = CitationBuilder(evidence.sources)
    copies = {sp.passage.passage_id: sp.also_in for sp in evidence.sources}
    lines = []
    for s in picked:
        text, lead = attribution(ask, metas.get(s.passage_id), without_markers(s.text), copies.get(s.passage_id, []))
        lines.append(
            AnswerSentence(
                text=text, citations=[builder.cite(s, s.relevance)], supported=True, support=s.relevance, record=lead
            )
        )
    return lines, builder.citations


_STATED = re.compile(r"[A-Z][\w’'&.-]*|\d+")


def record_holds(record: str, citation: Citation) -> bool:
    """Every name and number an attribution's lead states is the cited article's record (outlet, headline, date,
    the outlets that carried its copies) or in its quoted words ("citing Bloomberg"): the lead is checked too."""
    days = [citation.date, *(c.date for c in citation.also_in)]
    known = " ".join(
        [
            citation.source or "",
            citation.title or "",
            *(c.source or "" for c in citation.also_in),
            *(_day(d) or "" for d in days),
            *(q.text for q in citation.all_quotes()),
        ]
    )
    have = {w.strip(".").lower() for w in _STATED.findall(known)}
    stated = {w.strip(".").lower() for w in _STATED.findall(record)} - {"the"}
    return stated <= have


def outlet_scope(question: str, outlets: set[str]) -> tuple[str, str] | None:
    """("What was Ukraine preparing for?", "Euractiv") for "What was Ukraine preparing for, according to the sources
    cited by Euractiv?": the question without its outlet phrase, and the outlet named, when it is one of `outlets`
    (the sources of indexed articles). The outlet is matched as written in the record, so "according to the
    independent auditors" is not The Independent."""
    named = [o for o in outlets if o and o.lower().removeprefix("the ") in question.lower()]
    for outlet in sorted(named, key=len, reverse=True):
        name = re.escape(outlet.removeprefix("The ").removeprefix("the "))
        pattern = rf"(?:(?i:the)\s+)?{name}"
        if m := re.search(_OUTLET_VERB.format(outlet=pattern), question):
            rest = question[m.end() :].strip()
            return f"{m.group('wh')} was reported {rest}".strip(), outlet
        for template in _SCOPE_TEMPLATES:
            if m := re.search(template.format(outlet=pattern), question):
                rest = (question[: m.start()] + question[m.end() :]).strip()
                rest = re.sub(r"\s+([?.!,])", r"\1", re.sub(r"^[,\s]+", "", rest))
                if len(rest) >= 8:
                    return rest[0].upper() + rest[1:], outlet
    return None
