"""The `tags` protocol: descriptive requests ("atmospheric", "twist ending", "heist"), one query
per tag, the movies people gave that tag as the relevant items, ranked by a text space.

Cases come from a MovieLens `tags.csv` (userId, movieId, tag, timestamp): tags are lowered
and trimmed, and a tag is a case when at least `MIN_TAGGED` catalog items carry it, except
the tags that describe a person's list rather than the movie (`NOT_DESCRIPTIVE`). On
ml-latest-small that is 56 tags over 538 movies.

The spaces ("pipelines" of the protocol) embed each item's text with the configured embedder
and rank by cosine similarity to the tag; none of them sees the tags:

plain               title, year and genres (`title_genres`)
knowledge           the same plus the LLM's item knowledge (`title_genres_knowledge`)
shuffled-knowledge  the control: every item with knowledge gets another such item's (seeded)

They rank the same items: those with knowledge when any was built (the tagged items and the
distractors it was built for), else the whole catalog; a tag's relevant items are those of
its movies in that set.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from recagent.data.catalog import Item
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.evals.recommender import Recommendation
from recagent.index.embedders import Embedder, checked_embed
from recagent.index.text import load_template
from recagent.represent.text_vectors import embed_cached
from recagent.workspace import Workspace

MIN_TAGGED = 10
NOT_DESCRIPTIVE = ("in netflix queue", "imdb top 250")
SPACES = {
    "plain": "title_genres",
    "knowledge": "title_genres_knowledge",
    "shuffled-knowledge": "title_genres_knowledge",
}
SHUFFLE_SEED = 0


class TagCase(BaseModel):
    index: int
    tag: str
    items: list[str]


def read_tags(path: Path) -> dict[str, set[str]]:
    """tag (lowered, trimmed) -> the item ids people gave it."""
    tagged: dict[str, set[str]] = defaultdict(set)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"movieId", "tag"} <= set(reader.fieldnames):
                raise ConfigError(
                    f"{path}: expected a MovieLens tags.csv (movieId and tag columns)"
                )
            for row in reader:
                tag = " ".join((row.get("tag") or "").lower().split())
                if tag and row.get("movieId"):
                    tagged[tag].add(row["movieId"].strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the tags file {path}: {exc}") from None
    return tagged


def tag_cases(path: Path, dataset: Dataset, universe: set[str] | None = None) -> list[TagCase]:
    """One case per descriptive tag with at least `MIN_TAGGED` catalog items, in tag order;
    with `universe`, only its items count as relevant (a tag left with none is dropped)."""
    catalog = dataset.catalog
    cases: list[TagCase] = []
    for tag, ids in sorted(read_tags(path).items()):
        if tag in NOT_DESCRIPTIVE:
            continue
        known = sorted(i for i in ids if i in catalog)
        if len(known) < MIN_TAGGED:
            continue
        relevant = [i for i in known if universe is None or i in universe]
        if relevant:
            cases.append(TagCase(index=len(cases), tag=tag, items=relevant))
    if not cases:
        raise ConfigError(f"{path}: no tag names {MIN_TAGGED} or more items of {dataset.name!r}")
    return cases


def tagged_items(path: Path, dataset: Dataset) -> list[str]:
    """Every item a case of the protocol relies on (what knowledge must be built for)."""
    return sorted({i for case in tag_cases(path, dataset) for i in case.items})


def universe_of(dataset: Dataset) -> list[Item]:
    """What the spaces rank: the items with knowledge, or every item when none has any."""
    items = list(dataset.catalog)
    known = [it for it in items if it.knowledge]
    return known or items


def shuffled_knowledge(items: list[Item], seed: int = SHUFFLE_SEED) -> list[Item]:
    """The control: each item with knowledge gets another one's, by a seeded derangement-ish
    permutation (a rotation of a shuffled order, so nobody keeps their own)."""
    holders = [i for i, it in enumerate(items) if it.knowledge]
    if len(holders) < 2:
        return items
    order = np.random.default_rng(seed).permutation(len(holders))
    out = list(items)
    for a, b in zip(order, np.roll(order, 1), strict=True):
        source, dest = holders[int(b)], holders[int(a)]
        out[dest] = items[dest].model_copy(update={"knowledge": items[source].knowledge})
    return out


@dataclass
class TextSpace:
    """Cosine ranking of `items` (their text under `template`) against a query."""

    name: str
    items: list[Item]
    template: str
    embedder: Embedder
    workspace: Workspace

    @cached_property
    def matrix(self) -> np.ndarray:
        texts = load_template(self.template).render_all(self.items)
        return embed_cached(self.workspace, self.embedder, texts)

    def rank(self, query: str, k: int) -> list[str]:
        q = checked_embed(self.embedder, [query])[0]
        scores = self.matrix @ q
        top = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [self.items[int(i)].item_id for i in top]

    def recommend(self, query: str, k: int) -> Recommendation:
        return Recommendation(item_ids=self.rank(query, k))


def make_space(name: str, dataset: Dataset, embedder: Embedder, workspace: Workspace) -> TextSpace:
    if name not in SPACES:
        raise ConfigError(
            f"the tags protocol ranks text spaces: {', '.join(SPACES)} (not {name!r})"
        )
    items = universe_of(dataset)
    if name != "plain" and not any(it.knowledge for it in items):
        raise ConfigError(
            f"{name!r} needs item knowledge: run `recagent knowledge build --dataset "
            f"{dataset.name}` first"
        )
    if name == "shuffled-knowledge":
        items = shuffled_knowledge(items)
    return TextSpace(name, items, SPACES[name], embedder, workspace)


__all__ = [
    "MIN_TAGGED",
    "NOT_DESCRIPTIVE",
    "SPACES",
    "TagCase",
    "TextSpace",
    "make_space",
    "read_tags",
    "shuffled_knowledge",
    "tag_cases",
    "tagged_items",
    "universe_of",
]
