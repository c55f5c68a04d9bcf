"""What every tool shares: item references, evidence, the per-turn candidate set, the runtime
context, typed errors and the `ToolSpec` that describes a tool.

A tool is a plain function `run(args, ctx) -> result`; each tool module lists its specs in
`SPECS` and `recagent.tools.registry` registers them explicitly (one registry, nothing
registered by importing a module). Results are small pydantic models; item text inside them
is data, never instructions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.catalog import Catalog, Item
from recagent.data.dataset import Dataset
from recagent.models.base import Scorer

if TYPE_CHECKING:
    from recagent.data.pairs import ItemPairs
    from recagent.data.profile import UserProfile
    from recagent.index.item_index import ItemIndex
    from recagent.models.ratings import RatingModel
    from recagent.models.scorers import ScorerShelf

EvidenceKind = Literal[
    "text_match",  # matched a free-text query (score = similarity, matched_text)
    "similar_to_items",  # near given reference items (because_of = those item ids)
    "similar_to_history",  # near the user's history (because_of = the history items)
    "co_watched",  # people who liked the because_of items also liked this one
    "similar_to_disliked",  # near an item the user disliked (because_of = that item)
    "sequential",  # scored by the sequence model for this history (score, rank, attended)
    "suggested",  # a title the model named from what it knows, found in the catalog (rank)
    "popularity",  # popular overall
    "title_match",  # title lookup
    "filter",  # passed hard filters
    "profile",  # matches the user's profile (detail says how)
]


class ItemRef(BaseModel):
    """How tools refer to an item: its id (use this in answers) and what people see."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    title: str
    year: int | None = None
    genres: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, item: Item) -> ItemRef:
        return cls(item_id=item.item_id, title=item.title, year=item.year, genres=list(item.genres))


# Evidence.detail of a similar_items hit, saying which similarity found it: the text space's
# hits have none (they look alike); the item encoder's co-watch space (recagent.represent.
# space) says COWATCH (the same people liked both, not by text); the blend of the two
# (recagent.represent.blend) names the part or parts that carried each hit, joined by "; "
LOOKALIKE = "looks alike"
COWATCH = "liked by the same people"
PART_WORDS = {"text": LOOKALIKE, "cowatch": COWATCH}


def similarity_detail(parts: list[str]) -> str:
    """The Evidence.detail of a hit carried by these parts of a blended space."""
    return "; ".join(PART_WORDS[p] for p in PART_WORDS if p in parts) or LOOKALIKE


def carried_by(detail: str | None) -> set[str]:
    """Which similarity a similar_items hit's `detail` names: {"text"} (looks alike),
    {"cowatch"} (liked by the same people), or both."""
    said = set((detail or "").split("; "))
    return {p for p, words in PART_WORDS.items() if words in said} or {"text"}


class Evidence(BaseModel):
    """Why a tool returned an item. Explanations may only cite evidence like this."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    kind: EvidenceKind
    score: float | None = None
    rank: int | None = None
    matched_text: str | None = None
    because_of: list[str] = Field(default_factory=list, description="Item ids behind it.")
    detail: str | None = None
    catalog_rank: int | None = Field(
        None, description="Its place among every unseen catalog item (a model's score)."
    )


class ToolError(BaseModel):
    """A tool could not do what was asked; `hint` says how to call it instead."""

    model_config = ConfigDict(extra="forbid")

    error: str
    hint: str | None = None
    ok: Literal[False] = False


@dataclass
class Candidate:
    item_id: str
    evidence: list[Evidence] = field(default_factory=list)


class CandidateSet:
    """Items tools returned this turn, with their evidence, in first-seen order.

    `filter_items` can drop items from the active set; `returned` still remembers every item
    a tool returned this turn (what the guard checks answers against).
    """

    def __init__(self) -> None:
        self._items: dict[str, Candidate] = {}
        self._returned: set[str] = set()

    def add(self, item_id: str, evidence: Evidence) -> None:
        cand = self._items.setdefault(item_id, Candidate(item_id))
        if evidence not in cand.evidence:  # the same finding twice is one piece of evidence
            cand.evidence.append(evidence)
        self._returned.add(item_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[str]:
        return list(self._items)

    def get(self, item_id: str) -> Candidate | None:
        return self._items.get(item_id)

    def evidence(self, item_id: str) -> list[Evidence]:
        cand = self._items.get(item_id)
        return list(cand.evidence) if cand else []

    def returned(self, item_id: str) -> bool:
        """Whether any tool returned this item this turn (even if filtered out since)."""
        return item_id in self._returned

    def rank_of(self, item_id: str, kind: str) -> tuple[int, int] | None:
        """An active candidate's rank by its best score of one evidence kind among the
        active candidates that have one, and how many have one (None: it has none)."""
        best: dict[str, float] = {}
        for cand in self._items.values():
            scores = [e.score for e in cand.evidence if e.kind == kind and e.score is not None]
            if scores:
                best[cand.item_id] = max(scores)
        if item_id not in best:
            return None
        mine = best[item_id]
        return 1 + sum(v > mine for v in best.values()), len(best)

    def retain(self, keep: Iterable[str]) -> None:
        """Keep only `keep` in the active set (order preserved)."""
        wanted = set(keep)
        self._items = {k: v for k, v in self._items.items() if k in wanted}

    def clear(self) -> None:
        self._items.clear()
        self._returned.clear()


@dataclass
class ToolCall:
    """One tool call, for the run log and the guard."""

    name: str
    args: dict[str, Any]
    ok: bool
    duration_ms: float
    error: str | None = None


@dataclass
class ToolContext:
    """Runtime context injected into every tool (never asked from the LLM).

    `history` is the current user's history as item ids in time order (empty for a new
    user). `scorer` and `index` are the classical models; a tool that needs one that is
    missing returns a `ToolError`.
    """

    dataset: Dataset
    user_id: str | None = None
    history: list[str] = field(default_factory=list)
    scorer: Scorer | None = None  # the default model (best on valid)
    scorers: ScorerShelf | None = None  # any model by name, loaded on first use
    index: ItemIndex | None = None  # the text space
    # the space "more like this" searches when it is not the text index (the item
    # encoder's co-watch space, recagent.represent.space)
    similar_index: ItemIndex | None = None
    pairs: ItemPairs | None = None  # items people consume together
    candidates: CandidateSet = field(default_factory=CandidateSet)
    calls: list[ToolCall] = field(default_factory=list)
    profile_writer: Callable[[UserProfile], str | None] | None = None  # an LLM words profiles
    history_ratings: list[float | None] | None = None  # aligned with `history` when known
    popularity: np.ndarray | None = None  # counts per item_idx (evaluation: train only)
    # the best rating predictor on valid, fitted on first use (None: the data has no ratings)
    rating_model: Callable[[], RatingModel | None] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    on_call: Callable[[str, dict[str, Any]], None] | None = None  # told of each call as it starts

    @property
    def catalog(self) -> Catalog:
        return self.dataset.catalog

    @property
    def match_threshold(self) -> float:
        """Text similarity below which a search hit is not a match (the index calibrates it)."""
        return float(getattr(self.index, "match_threshold", 0.0)) if self.index else 1.0

    @property
    def popularity_counts(self) -> np.ndarray:
        return self.popularity if self.popularity is not None else self.dataset.popularity

    def ref(self, item_id: str) -> ItemRef:
        return ItemRef.of(self.catalog[item_id])

    def new_turn(self) -> None:
        self.candidates.clear()
        self.calls.clear()

    def unknown_ids(self, item_ids: Iterable[str]) -> list[str]:
        return [i for i in item_ids if i not in self.catalog]


Runner = Callable[[Any, "ToolContext"], BaseModel]


@dataclass(frozen=True)
class ToolSpec:
    """A tool: its name, the description the model reads (its docstring), its argument
    model and the function that runs it."""

    name: str
    description: str
    args: type[BaseModel]
    run: Runner


def tool_spec(name: str, args: type[BaseModel], run: Callable[..., BaseModel]) -> ToolSpec:
    """The spec of `run(args, ctx)`; its docstring is the description the model reads."""
    return ToolSpec(
        name=name, description=" ".join((run.__doc__ or "").split()), args=args, run=run
    )


def result_text(result: BaseModel) -> str:
    """What the LLM sees: compact JSON of the result."""
    return result.model_dump_json(exclude_none=True)


_DROPPED_KEYS = {
    "title",
    "maxItems",
    "minItems",
    "maxLength",
    "minLength",
    "default",
    "additionalProperties",
}


def llm_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The arguments schema shown to an LLM: the pydantic schema without titles, defaults,
    `additionalProperties` and length bounds. Servers that compile schemas to grammars
    (llama.cpp) choke on large bounds, and every key costs prompt tokens; the full model
    still validates every call."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):  # a property *named* "title" (a dict) stays
            return {
                k: clean(v)
                for k, v in node.items()
                if k not in _DROPPED_KEYS or isinstance(v, dict)
            }
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    schema = clean(model.model_json_schema())
    schema.pop("description", None)  # the tool's own description says it
    return schema


__all__ = [
    "COWATCH",
    "LOOKALIKE",
    "PART_WORDS",
    "Candidate",
    "CandidateSet",
    "Evidence",
    "EvidenceKind",
    "ItemRef",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "carried_by",
    "llm_schema",
    "result_text",
    "similarity_detail",
    "tool_spec",
]
