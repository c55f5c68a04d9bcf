"""The grounding guard: whatever proposed the list (LLM or planner), what reaches the user is
checked and repaired here, once per turn.

Every item must exist in the catalog and have been returned by a tool this turn; no
duplicates; the turn's constraints hold (`Constraints.admits`: the reading's genres and
years, no excluded item - seen unless asked, a reference, disliked, already shown -, only
allowed items); exactly the requested count when enough items qualify. Explanations and the
message may only cite titles in the history, the item's evidence or the request, genres the
items have, years and ranks that are true, and must say more than the item's title line.
The message may name the person's own titles only as what the picks are like ("since you
loved Heat"), never as a pick. Years are checked on the text without its titles ("2001: A
Space Odyssey" claims no year). Each violation is repaired (dropped, backfilled from the
ranking, rewritten from evidence) and counted, never passed through.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from recagent.agent.ranking import Ranking
from recagent.agent.schema import FinalPick, RankedItem
from recagent.agent.turn import Turn
from recagent.agent.vocabulary import REFERENCE_CUE, STOPWORDS
from recagent.tools.base import ToolContext

Explain = Callable[[str], str]
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_RANK = re.compile(r"(?:\branked?\s*(?:#|number\s*)?|#)(\d{1,4})(?:st|nd|rd|th)?\b", re.I)
_WORDS = re.compile(r"[a-z0-9]+")
# words before one of the person's own titles that make it a reason, not a pick
_AS_REASON = re.compile(
    REFERENCE_CUE + r"\s*$|\b(?:since|because|as|after|given|if) you\b[^.;!?]*$|"
    r"\b(?:loved|liked|enjoyed|watched|seen|saw|love|like|enjoy|fans? of)\s*$",
    re.I,
)
MIN_EXPLANATION_WORDS = 2  # beyond the item's own title, year and genres


@dataclass
class GuardResult:
    items: list[RankedItem]
    repairs: Counter[str] = field(default_factory=Counter)
    notices: list[str] = field(default_factory=list)


def _without(text: str, spans: list[tuple[int, int, set[str]]]) -> str:
    """`text` with the given spans blanked out."""
    chars = list(text)
    for start, end, _ in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


class Guard:
    def __init__(self, ctx: ToolContext, turn: Turn) -> None:
        self.ctx = ctx
        self.turn = turn
        self.constraints = turn.constraints
        self.seen = set(turn.history)
        self.reference_ids = set(turn.reference_ids)

    def rejection(self, item_id: str) -> str | None:
        """Why `item_id` cannot be in the answer (None when it can)."""
        item = self.ctx.catalog.get(item_id)
        if item is None:
            return "unknown_item"
        if not self.ctx.candidates.returned(item_id):
            return "not_from_tool"
        reason = self.constraints.admits(item)
        if reason == "excluded":
            return self.turn.exclusions.get(item_id, "excluded")
        if reason == "not_included":
            return "outside_candidates"
        return reason

    def _repeats(self, item_id: str, chosen: list[str]) -> bool:
        """`item_id`, or another edition of the same title, is already in the answer."""
        if item_id in chosen:
            return True
        return bool(self.ctx.dataset.titles.other_editions([item_id]) & set(chosen))

    def _resolve(self, raw_id: str) -> str:
        """LLMs sometimes answer with a title instead of an id: map an exact title back."""
        if raw_id in self.ctx.catalog:
            return raw_id
        hits = self.ctx.dataset.titles.search(raw_id, limit=1, min_score=97)
        return hits[0].item_id if hits else raw_id

    def _claims_hold(
        self, text: str, item_ids: Sequence[str], allowed_titles: set[str], ranks: set[int]
    ) -> bool:
        """The text cites only allowed titles, genres the items have, the years of the items
        and titles it names, and the given ranks."""
        catalog = self.ctx.catalog
        spans = self.ctx.dataset.titles.mention_spans(text)
        if any(not ids & allowed_titles for _, _, ids in spans):
            return False  # a title (of any item that carries it) nothing supports
        mentioned = {i for _, _, ids in spans for i in ids if i in allowed_titles}
        genres = set().union(*(catalog[i].genres for i in item_ids)) if item_ids else set()
        if not self.ctx.dataset.genres.mentions(_without(text, spans)) <= genres:
            return False  # genre words inside titles ("Infinity War") are not claims
        years = {int(y) for y in _YEAR.findall(_without(text, spans))}
        known_years = {catalog[i].year for i in mentioned | set(item_ids) if i in catalog}
        if not years <= known_years:
            return False
        return {int(r) for r in _RANK.findall(text)} <= ranks

    def faithful(self, item_id: str, text: str, rank: int | None = None) -> bool:
        """The explanation cites only what exists: titles of the item, the history, its
        evidence or the user's references; genres the item has; years of those titles; and
        ranks its evidence (or its place in the list) really has."""
        evidence = self.ctx.candidates.evidence(item_id)
        allowed = {item_id} | self.seen | self.reference_ids
        for ev in evidence:
            allowed.update(ev.because_of)
        ranks = {ev.rank for ev in evidence if ev.rank} | {rank or 0}
        ranks |= {ev.catalog_rank for ev in evidence if ev.catalog_rank}
        for kind in {ev.kind for ev in evidence}:  # ranks among this turn's candidates
            among = self.ctx.candidates.rank_of(item_id, kind)
            if among:
                ranks.add(among[0])
        return self._claims_hold(text, [item_id], allowed, ranks)

    def says_something(self, item_id: str, text: str) -> bool:
        """More than the item's title, year and genres ("Heat (1995), Action, Crime" is not
        an explanation)."""
        item = self.ctx.catalog[item_id]
        known = set(_WORDS.findall(item.title.lower())) | {str(item.year)}
        known |= {w for g in item.genres for w in _WORDS.findall(g.lower())}
        rest = [w for w in _WORDS.findall(text.lower()) if w not in known and w not in STOPWORDS]
        return len(rest) >= MIN_EXPLANATION_WORDS

    def message_holds(self, text: str, items: Sequence[RankedItem]) -> bool:
        """The answer's message makes only claims that hold for the list: titles shown,
        seen or referred to, genres most of the items have, their years, no ranks."""
        ids = [it.item_id for it in items]
        counts = Counter(g for it in items for g in it.genres)
        common = [g for g, n in counts.items() if 2 * n >= len(items)]
        catalog = self.ctx.catalog
        own = self.seen | self.reference_ids
        allowed = set(ids) | own
        spans = self.ctx.dataset.titles.mention_spans(text)
        for start, _, group in spans:
            if group & set(ids):
                continue
            if not group & own or not _AS_REASON.search(text[max(0, start - 60) : start]):
                return False  # a title not in the list, or the person's own named as a pick
        if not self.ctx.dataset.genres.mentions(_without(text, spans)) <= set(common):
            return False
        years = {int(y) for y in _YEAR.findall(_without(text, spans))}
        if not years <= {catalog[i].year for i in allowed if i in catalog}:
            return False
        return not _RANK.findall(text)

    def check(
        self,
        picks: Sequence[FinalPick],
        ranking: Ranking,
        explain: Explain,
        keep_pick_order: bool = False,
        expected: int | None = None,
    ) -> GuardResult:
        """Validate `picks`, backfill from the ranking (best first), explain, and order: by
        the tools' scores, or (`keep_pick_order`) the picks' own order, backfill after.
        `expected`: how many picks were asked of the proposer (default k); filling up to it
        is a repair, filling beyond it is the tools' share."""
        repairs: Counter[str] = Counter()
        chosen: list[str] = []
        texts: dict[str, str] = {}
        k = self.turn.k
        for pick in picks:
            item_id = self._resolve(pick.item_id.strip())
            if item_id != pick.item_id.strip():
                repairs["title_as_id"] += 1
            why = self.rejection(item_id)
            if why is None and self._repeats(item_id, chosen):
                why = "duplicate"
            if why is not None:
                repairs[why] += 1
                continue
            chosen.append(item_id)
            texts[item_id] = pick.explanation.strip()
        if len(chosen) > k:
            repairs["too_many"] += len(chosen) - k
            chosen = chosen[:k]
        picked = len(chosen)
        for item_id in ranking.order:
            if len(chosen) >= k:
                break
            if not self._repeats(item_id, chosen) and self.rejection(item_id) is None:
                chosen.append(item_id)
        asked = k if expected is None else min(k, expected)
        if picks and picked < asked:
            repairs["backfilled"] += min(len(chosen), asked) - picked
        if not keep_pick_order:
            chosen.sort(key=lambda i: -ranking.scores.get(i, float("-inf")))
        notices = []
        if len(chosen) < k:
            notices.append(f"only {len(chosen)} item(s) match the request (asked for {k})")
        items = []
        for rank, item_id in enumerate(chosen, start=1):
            text = texts.get(item_id, "")
            if text and not self.faithful(item_id, text, rank):
                repairs["unfaithful_explanation"] += 1
                text = ""
            elif text and not self.says_something(item_id, text):
                repairs["empty_explanation"] += 1
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
                    score=ranking.scores.get(item_id),
                )
            )
        return GuardResult(items=items, repairs=repairs, notices=notices)


__all__ = ["Guard", "GuardResult"]
