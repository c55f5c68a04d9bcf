"""What the API shows of catalog items and of the evidence behind a recommendation."""

from __future__ import annotations

from recagent.agent.schema import RankedItem
from recagent.data.catalog import Catalog, Item
from recagent.models.registry import title as model_title
from recagent.models.registry import weighed_words
from recagent.tools.base import Evidence, carried_by
from recagent.web.models import EvidenceOut, ItemOut, WhyOut

MATCHED_CHARS = 120


def item_out(item: Item, with_text: bool = False) -> ItemOut:
    return ItemOut(
        item_id=item.item_id,
        title=item.title,
        year=item.year,
        genres=list(item.genres),
        text=item.text if with_text else "",
    )


def _named(catalog: Catalog, item_ids: list[str]) -> str:
    labels = [catalog[i].label for i in item_ids if i in catalog]
    return ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")


def evidence_words(ev: Evidence, catalog: Catalog) -> str:
    """One piece of evidence as a sentence."""
    score = f" (score {ev.score:.3f})" if ev.score is not None else ""
    rank = f"ranked {ev.rank}" if ev.rank is not None else ""
    because = _named(catalog, ev.because_of)
    kind = ev.kind
    if kind == "sequential":
        model = model_title(ev.detail) if ev.detail else "the sequence model"
        said = f"{model} {rank or 'scored it'} as a likely next pick{score}"
        if ev.catalog_rank:
            said += f" (#{ev.catalog_rank} of the whole catalog)"
        return said + (f", {weighed_words(ev.detail)} {because}" if because else "")
    if kind == "suggested":
        return f"the model named it from what it knows (its pick #{ev.rank}), found in the catalog"
    if kind == "text_match":
        text = ev.matched_text or ""
        text = (
            f": “{text[:MATCHED_CHARS]}{'…' if len(text) > MATCHED_CHARS else ''}”" if text else ""
        )
        similarity = f" (similarity {ev.score:.2f})" if ev.score is not None else ""
        if ev.detail and ev.detail.startswith("weak"):
            return f"only a weak match for the request{similarity}, not a reason{text}"
        return f"its description is close to the request{similarity}{text}"
    if kind == "similar_to_items":
        parts = carried_by(ev.detail)
        said = " and ".join(
            words
            for part, words in (("text", "similar to"), ("cowatch", "liked by the same people as"))
            if part in parts
        )
        return f"{said} {because or 'the reference items'}{score}"
    if kind == "similar_to_history":
        return f"similar to what was watched: {because or 'the history'}{score}"
    if kind == "co_watched":
        return f"people who liked {because or 'the same items'} also watched it{score}"
    if kind == "similar_to_disliked":
        return f"close to {because or 'a disliked item'}, which counts against it{score}"
    if kind == "popularity":
        weight = f" (recency-weighted count {ev.score:,.0f})" if ev.score is not None else ""
        return f"popular lately{weight}"
    if kind == "title_match":
        return f"its title matches{score}"
    if kind == "filter":
        return "passes the request's constraints"
    if kind == "profile":
        return ev.detail or "fits the profile"
    return ev.detail or kind.replace("_", " ")


def evidence_out(ev: Evidence, catalog: Catalog) -> EvidenceOut:
    return EvidenceOut(
        tool=ev.tool,
        kind=ev.kind,
        words=evidence_words(ev, catalog),
        score=ev.score,
        rank=ev.rank,
        matched_text=ev.matched_text,
        because_of=[item_out(catalog[i]) for i in ev.because_of if i in catalog],
    )


def why_out(item: RankedItem, catalog: Catalog) -> WhyOut:
    return WhyOut(
        rank=item.rank,
        item_id=item.item_id,
        title=item.title,
        explanation=item.explanation,
        evidence=[evidence_out(ev, catalog) for ev in item.evidence],
    )


__all__ = ["evidence_out", "evidence_words", "item_out", "why_out"]
