"""The grounding guard: whatever proposed the list (LLM or planner), what reaches the user is
checked and repaired here.

Every item must exist in the catalog and have been returned by a tool this turn; no
duplicates; seen items only when asked; the request's hard constraints (genres, years) hold;
reference items ("like Toy Story") are not recommended back; exactly the requested count
(when enough items qualify). Explanations may only cite titles that are in the user's
history, the item's evidence or the request. Each violation is repaired (dropped,
backfilled from the candidate set by tool score, explanation rewritten from evidence) and
counted, never passed through.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from recagent.agent.request import Request
from recagent.agent.schema import FinalPick, RankedItem
from recagent.data.catalog import Item
from recagent.tools.base import ToolContext

Explain = Callable[[str], str]
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_RANK = re.compile(r"(?:\branked?\s*(?:#|number\s*)?|#)(\d{1,4})(?:st|nd|rd|th)?\b", re.I)


@dataclass
class GuardResult:
    items: list[RankedItem]
    repairs: Counter[str] = field(default_factory=Counter)
    notices: list[str] = field(default_factory=list)


def violates(item: Item, request: Request) -> str | None:
    """The first hard constraint of `request` that `item` breaks, if any."""
    genres = set(item.genres)
    if request.genres_all and not set(request.genres_all) <= genres:
        return "genre"
    if request.genres_any and not genres & set(request.genres_any):
        return "genre"
    if genres & set(request.genres_none):
        return "excluded_genre"
    if request.year_min is not None and (item.year is None or item.year < request.year_min):
        return "year"
    if request.year_max is not None and (item.year is None or item.year > request.year_max):
        return "year"
    return None


class Guard:
    def __init__(
        self,
        ctx: ToolContext,
        request: Request,
        k: int,
        reference_ids: Sequence[str] = (),
        exclude_ids: Sequence[str] = (),
        allowed_ids: Sequence[str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.k = k
        self.reference_ids = set(reference_ids)
        self.exclude_ids = set(exclude_ids)
        self.seen = set(ctx.history)
        self.allowed = set(allowed_ids) if allowed_ids is not None else None

    def rejection(self, item_id: str) -> str | None:
        """Why `item_id` cannot be in the answer (None when it can)."""
        item = self.ctx.catalog.get(item_id)
        if item is None:
            return "unknown_item"
        if not self.ctx.candidates.returned(item_id):
            return "not_from_tool"
        if self.allowed is not None and item_id not in self.allowed:
            return "outside_candidates"
        if item_id in self.reference_ids:
            return "reference_item"
        if item_id in self.exclude_ids:
            return "already_shown"
        if item_id in self.seen and not self.request.include_seen:
            return "seen"
        return violates(item, self.request)

    def _resolve(self, raw_id: str) -> str:
        """LLMs sometimes answer with a title instead of an id: map an exact title back."""
        if raw_id in self.ctx.catalog:
            return raw_id
        hits = self.ctx.dataset.titles.search(raw_id, limit=1, min_score=97)
        return hits[0].item_id if hits else raw_id

    def faithful(self, item_id: str, text: str, rank: int | None = None) -> bool:
        """The explanation cites only what exists: titles of the item, the history, its
        evidence or the user's references; genres the item has; years of those titles; and
        ranks its evidence (or its place in the list) really has."""
        catalog = self.ctx.catalog
        mentioned = self.ctx.dataset.titles.mentions(text)
        evidence = self.ctx.candidates.evidence(item_id)
        allowed = {item_id} | self.seen | self.reference_ids
        for ev in evidence:
            allowed.update(ev.because_of)
        if not mentioned <= allowed:
            return False
        item = catalog[item_id]
        if not self.ctx.dataset.genres.mentions(text) <= set(item.genres):
            return False
        years = {int(y) for y in _YEAR.findall(text)}
        known_years = {catalog[i].year for i in mentioned | {item_id} if i in catalog}
        if not years <= known_years:
            return False
        ranks = {int(r) for r in _RANK.findall(text)}
        return ranks <= {ev.rank for ev in evidence if ev.rank} | {rank}

    def check(
        self,
        picks: Sequence[FinalPick],
        ranked_pool: Sequence[str],
        scores: dict[str, float],
        explain: Explain,
        keep_pick_order: bool = False,
    ) -> GuardResult:
        """Validate `picks`, backfill from `ranked_pool` (best first), explain, and rank."""
        repairs: Counter[str] = Counter()
        chosen: list[str] = []
        texts: dict[str, str] = {}
        for pick in picks:
            item_id = self._resolve(pick.item_id.strip())
            if item_id != pick.item_id.strip():
                repairs["title_as_id"] += 1
            why = self.rejection(item_id)
            if why is None and item_id in chosen:
                why = "duplicate"
            if why is not None:
                repairs[why] += 1
                continue
            chosen.append(item_id)
            texts[item_id] = pick.explanation.strip()
        if len(chosen) > self.k:
            repairs["too_many"] += len(chosen) - self.k
            chosen = chosen[: self.k]
        for item_id in ranked_pool:
            if len(chosen) >= self.k:
                break
            if item_id not in chosen and self.rejection(item_id) is None:
                chosen.append(item_id)
                if picks:
                    repairs["backfilled"] += 1
        if not keep_pick_order:
            chosen.sort(key=lambda i: -scores.get(i, float("-inf")))
        notices = []
        if len(chosen) < self.k:
            notices.append(f"only {len(chosen)} item(s) match the request (asked for {self.k})")
        items = []
        for rank, item_id in enumerate(chosen, start=1):
            text = texts.get(item_id, "")
            if text and not self.faithful(item_id, text, rank):
                repairs["unfaithful_explanation"] += 1
                text = ""
            item = self.ctx.catalog[item_id]
            items.append(
                RankedItem(
                    rank=rank,
                    item_id=item_id,
                    title=item.title,
                    year=item.year,
                    genres=list(item.genres),
                    explanation=text or explain(item_id),
                    evidence=self.ctx.candidates.evidence(item_id),
                    score=scores.get(item_id),
                )
            )
        return GuardResult(items=items, repairs=repairs, notices=notices)


__all__ = ["Guard", "GuardResult", "violates"]
