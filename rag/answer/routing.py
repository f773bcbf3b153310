"""Which path a question takes before retrieval: a question about the reporting itself ("Which outlet reported
X?"), a question scoped to one indexed outlet ("..., according to Euractiv?"), or a plain question."""

from __future__ import annotations

from dataclasses import dataclass

from rag.answer.provenance import ProvenanceAsk, outlet_scope, parse_provenance


@dataclass(frozen=True)
class Route:
    """`asked`: the reporting field asked about X; `scope`: (the question to ask, the outlet it is limited to)."""

    standalone: str
    asked: ProvenanceAsk | None = None
    scope: tuple[str, str] | None = None

    @property
    def query(self) -> str:
        """What is retrieved: the claim X of a provenance question, the question without its outlet phrase, or
        the question itself."""
        if self.asked:
            return self.asked.claim
        return self.scope[0] if self.scope else self.standalone

    @property
    def outlet(self) -> str | None:
        return self.scope[1] if self.scope else None


def route(standalone: str, outlets: set[str]) -> Route:
    """ "Which outlet reported X?" is X retrieved and judged, answered from the reporting article's record;
    "..., according to Euractiv?" is asked without the phrase, of that outlet's articles only."""
    asked = parse_provenance(standalone)
    if asked is None:
        return Route(standalone, scope=outlet_scope(standalone, outlets))
    if asked.outlet is None:
        return Route(standalone, asked=asked)
    named = outlet_named(asked.outlet, outlets)
    if named:
        return Route(standalone, asked=asked, scope=(asked.claim, named))
    # "When did NATO publish its report on X": a publisher that is no indexed outlet; the text must say.
    return Route(standalone, scope=outlet_scope(standalone, outlets))


def outlet_named(name: str, outlets: set[str]) -> str | None:
    """The indexed outlet a question names ("the Libertarian Institute"), as recorded."""
    wanted = name.lower().removeprefix("the ")
    return next((o for o in outlets if o.lower().removeprefix("the ") == wanted), None)


def scope_note(outlet: str | None) -> str:
    """Said after a refusal of a scoped question, so the reader knows what was (not) searched."""
    if not outlet:
        return ""
    possessive = "’" if outlet.endswith("s") else "’s"
    return f" (only {outlet}{possessive} articles were searched, as the question asks)"
