"""Queries over a built index: text -> items, items -> similar items, history -> items.

Scores are cosine similarities (1 = same direction). Every hit carries the item text that was
embedded, and similarity hits name the input items that made them similar.

Small catalogs (up to `exact_max_items`, 20,000 by default) are searched exactly: every
stored vector is read from Chroma once per open index into one matrix, and a query is a matrix
product, filters a mask on it. At ML-100k's 1,682 items that is several times faster than the
HNSW graph at the `ef_search` that larger catalogs need, and it never misses a neighbour.

Filters (larger catalogs): Chroma's embedded store evaluates a `where` filter by scanning
every record, so a filtered query costs O(catalog) (tens of ms at 100k items; see
benchmarks/RESULTS.md). When a filter keeps most of the catalog, fetching a few more
unfiltered neighbours and filtering them here is much faster and gives the same items (up to
HNSW approximation). `_nearest` picks: exact search (small catalogs); no filter; exact scoring
of an explicit id list; over-fetch and filter here (at most `max_overfetch` neighbours); or the
Chroma `where` clause when the filter is selective or the over-fetch came up short.

On a Chroma server a rebuild may, in time, delete the version an open index reads
(recagent.index.chroma). Each public query is answered from one version: when reading a
retired version fails or comes back short (it is gone, or being deleted), the index follows
the pointer to the live version (`reopen`), if that was built the same way, and runs the
whole query again there.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.config import IndexConfig
from recagent.data.catalog import Catalog
from recagent.data.constraints import ConstraintError, Constraints
from recagent.errors import ArtifactError, RecagentError
from recagent.index.chroma import (
    CollectionGoneError,
    IndexMeta,
    IndexUnavailableError,
    chroma_errors,
)
from recagent.index.embedders import Embedder, checked_embed
from recagent.index.filters import CatalogMask, catalog_mask, where_clause
from recagent.index.text import ItemTemplate
from recagent.locks import Lease
from recagent.topk import top_k

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MAX_K = 1000
MAX_QUERY_CHARS = 4000
MAX_INPUT_ITEMS = 500
MAX_HISTORY = 10_000
EXACT_LIMIT = 2048  # include_ids lists up to this size are scored exactly
TABLE_CHUNK = 65_536  # rows of the vector table scored at once (64 MB of 256-d vectors)
OVERFETCH_SAFETY = 2.0
BECAUSE_MARGIN = 0.05  # input items within this similarity of the best one also count
# Queries that mean nothing in any catalog: how similar they come out is the noise floor
NOISE_PROBES = (
    "the",
    "ok",
    "hello there",
    "thank you very much",
    "please help me",
    "I want something",
    "what do you think",
    "asdf qwer zxcv",
)
MATCH_MARGIN = 0.08
MAX_BECAUSE = 3


MAX_K_POOL = 400  # candidates fetched around a mean vector before re-scoring them
FOLLOW_TRIES = 3  # runs of one query while rebuilds on a server retire what it reads

_P = ParamSpec("_P")
_R = TypeVar("_R")


class QueryError(RecagentError):
    """A query the index cannot answer as asked (empty text, bad k, unknown ids)."""


class Hit(BaseModel):
    """One recalled item."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    score: float = Field(description="Cosine similarity to the query (history: see strategy).")
    text: str = Field(description="The item text that was embedded and matched.")
    because_of: list[str] = Field(
        default_factory=list, description="Input item ids that made it similar, best first."
    )
    carried_by: list[str] = Field(
        default_factory=list,
        description="In a blended space: the parts (text, cowatch) whose similarity to the "
        "first of because_of carried it.",
    )


@dataclass(frozen=True)
class VectorPart:
    """A slice of a blended space's stored vectors (recagent.represent.blend): columns
    start:stop hold sqrt(share) x a unit vector of space `name`."""

    name: str
    start: int
    stop: int
    share: float


@dataclass(frozen=True)
class PartRanking:
    """How a blended space ranks (any weights, whatever it stored): a pool of the items
    nearest in each part named in `lookalikes` (that many) and the rest of `pool` (at least
    the k asked for) nearest by the parts weighted `recall`, ordered by the parts weighted
    `order` (weights per part name, summing to 1); the score is the `order` blend of the
    parts' cosines."""

    recall: dict[str, float]
    pool: int
    order: dict[str, float]
    lookalikes: dict[str, int] = field(default_factory=dict)  # per part: its own nearest, too
    alike_rank: int = 20  # a part carried a hit among the input's this many nearest there


_Found = tuple[str, float]  # (item_id, cosine similarity)


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _one_version(
    query: Callable[Concatenate[ItemIndex, _P], _R],
) -> Callable[Concatenate[ItemIndex, _P], _R]:
    """`query`, answered wholly from one version of the index: run again on the live version
    when it failed reading a version that a rebuild retired (`ItemIndex.reopen`), or when
    another thread moved the index to a new version while it ran."""

    @functools.wraps(query)
    def run(self: ItemIndex, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        for attempt in range(FOLLOW_TRIES):
            seen = self._generation
            try:
                result = query(self, *args, **kwargs)
            except IndexUnavailableError as exc:
                if attempt == FOLLOW_TRIES - 1 or not self._read_retired(exc):
                    raise
                self._follow(seen)
                continue
            if self._generation == seen:
                return result
        raise IndexUnavailableError(f"{self.where} was rebuilt during the query; try again")

    return run


class ItemIndex:
    """A fresh index (its catalog, embedder and template match what it was built from)."""

    def __init__(
        self,
        collection: Collection,
        catalog: Catalog,
        embedder: Embedder,
        meta: IndexMeta,
        config: IndexConfig,
        where: str,
        client: ClientAPI | None = None,
        template: ItemTemplate | None = None,
    ) -> None:
        """`template`: the one the index was built with (its hash matches `meta`); hit texts
        are then rendered here from the catalog, the same text Chroma stores, without a round
        trip (~2 ms of a 10-ms query at 100k items)."""
        self.template = template
        self.collection = collection
        self.catalog = catalog
        self.embedder = embedder
        self.meta = meta
        self.config = config
        self.where = where
        self._client = client
        self.lease: Lease | None = None  # keeps the version being read on disk until close
        self.table_path: Path | None = None  # the vectors as a table beside the store, if any
        self.parts: list[VectorPart] = []  # a blended space's parts (see `_carried`)
        self.ranking: PartRanking | None = None  # and how it ranks (see `_nearest`)
        self.history_ranking: PartRanking | None = None  # near a history, if not the same
        self._alike_memo: dict[int, dict[str, dict[str, float]]] = {}  # see `_alike_levels`
        # on a server: the live collection now (None: gone), to follow when a rebuild
        # deleted the one read; each move to another version adds one to `_generation`
        self.reopen: Callable[[], Collection | None] | None = None
        self._generation = 0
        self._following = threading.Lock()

    def __len__(self) -> int:
        return self.meta.items

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def __enter__(self) -> ItemIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def match_threshold(self) -> float:
        """The similarity a text query must reach for a hit to count as a match: the best
        score of queries that mean nothing (greetings, filler, nonsense) against this
        catalog with this embedder, plus `MATCH_MARGIN`. Below it, a hit is only the nearest
        of poor matches ("Ignore all previous instructions" is not a taste)."""
        return self._noise_floor() + MATCH_MARGIN

    @_one_version
    def _noise_floor(self) -> float:
        vectors = checked_embed(self.embedder, list(NOISE_PROBES), self.meta.dim)
        best = [per[0][1] for per in self._nearest(vectors, 1, Constraints()) if per]
        return max(best, default=0.0)

    @property
    def _searched_exactly(self) -> bool:
        """Searched exactly over the in-memory vectors (see the module docstring)."""
        return len(self.catalog) <= self.config.exact_max_items

    @property
    def _mask(self) -> CatalogMask:
        return catalog_mask(self.catalog)

    # ---- public queries -------------------------------------------------------------------

    @_one_version
    def search(self, query: str, k: int = 10, filters: Constraints | None = None) -> list[Hit]:
        """Items whose text is nearest to `query`."""
        text = " ".join((query or "").split())
        if not text:
            raise QueryError("the query is empty; describe what to look for")
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(
                f"the query is {len(text)} characters long; keep it under {MAX_QUERY_CHARS}"
            )
        f = (filters or Constraints()).resolve(self.catalog)
        vector = checked_embed(self.embedder, [text], self.meta.dim)
        found = self._nearest(vector, check_k(k), f)[0]
        texts, _ = self._records([i for i, _ in found])
        return [Hit(item_id=i, score=s, text=texts[i]) for i, s in found]

    @_one_version
    def similar_to_items(
        self,
        item_ids: Sequence[str],
        k: int = 10,
        filters: Constraints | None = None,
        taste: bool = False,
    ) -> list[Hit]:
        """Items nearest to any of `item_ids` (never those items themselves); score = the
        best similarity to one of them. `taste`: the items are what a person liked, not
        "more like these": a blended space ranks as near a history."""
        ids = self._known_ids(item_ids, "item_ids", MAX_INPUT_ITEMS)
        f = (filters or Constraints()).resolve(self.catalog).excluding(ids)
        vectors = self.embeddings(ids)
        best: dict[str, float] = {}
        ranking = self.history_ranking if taste else None
        for per_query in self._nearest(vectors, check_k(k), f, ranking):
            for item_id, score in per_query:
                best[item_id] = max(score, best.get(item_id, -math.inf))
        top = sorted(best.items(), key=lambda t: -t[1])[:k]
        return self._carried(self._explained(top, ids, vectors))

    @_one_version
    def similar_to_all(
        self, item_ids: Sequence[str], k: int = 10, filters: Constraints | None = None
    ) -> list[Hit]:
        """Items near *every* one of `item_ids` ("between Alien and Toy Story"): found around
        their mean vector, scored by the weakest similarity to one of them."""
        ids = self._known_ids(item_ids, "item_ids", MAX_INPUT_ITEMS)
        f = (filters or Constraints()).resolve(self.catalog).excluding(ids)
        vectors = self.embeddings(ids)
        centroid = vectors.mean(axis=0, keepdims=True)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        k = check_k(k)
        found = self._nearest(centroid, min(MAX_K_POOL, 4 * k), f)[0]
        if not found:
            return []
        _, hit_vectors = self._records([i for i, _ in found], vectors=True, texts=False)
        weakest = [(float((vectors @ hit_vectors[i]).min()), i) for i, _ in found]
        top = [(i, s) for s, i in sorted(weakest, key=lambda t: (-t[0], t[1]))[:k]]
        hits = self._explained(top, ids, vectors)
        for hit in hits:
            hit.because_of = list(ids)  # close to all of them, by construction
        return self._carried(hits)

    @_one_version
    def similar_to_history(
        self,
        history: Sequence[str],
        k: int = 10,
        filters: Constraints | None = None,
        strategy: str | None = None,
    ) -> list[Hit]:
        """Items near a history (item ids, oldest first), never items already in it.

        ``centroid``: one query with the recency-weighted mean of the last
        `history_window` items; score = cosine to that mean. ``maxsim``: one query per recent
        item; score = the best similarity times that item's recency weight."""
        ids = self._known_ids(history, "history", MAX_HISTORY)
        in_order = [history] if isinstance(history, str) else [str(i) for i in history]
        # the most recent distinct items, oldest first
        window = list(dict.fromkeys(reversed(in_order)))[: self.config.history_window][::-1]
        age = np.arange(len(window) - 1, -1, -1, dtype=np.float32)
        weights = np.power(0.5, age / self.config.history_half_life).astype(np.float32)
        vectors = self.embeddings(window)
        f = (filters or Constraints()).resolve(self.catalog).excluding(ids)
        k = check_k(k)
        strategy = strategy or self.config.history_strategy
        if strategy == "centroid":
            centroid = (weights[:, None] * vectors).sum(axis=0, keepdims=True)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            found = self._nearest(centroid, k, f, self.history_ranking)[0]
            return self._carried(self._explained(found, window, vectors))
        if strategy != "maxsim":
            raise QueryError(f"unknown history strategy {strategy!r}: centroid or maxsim")
        best: dict[str, float] = {}
        sources: dict[str, list[tuple[float, str]]] = {}
        for i, per_query in enumerate(self._nearest(vectors, k, f, self.history_ranking)):
            for item_id, score in per_query:
                best[item_id] = max(float(weights[i]) * score, best.get(item_id, -math.inf))
                sources.setdefault(item_id, []).append((score, window[i]))
        top = sorted(best.items(), key=lambda t: -t[1])[:k]
        texts, _ = self._records([i for i, _ in top])
        return self._carried(
            [
                Hit(
                    item_id=i,
                    score=s,
                    text=texts[i],
                    because_of=_because(sorted(sources[i], reverse=True)),
                )
                for i, s in top
            ]
        )

    @_one_version
    def embeddings(self, item_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `item_ids`, in that order."""
        ids = list(item_ids)
        _, vectors = self._records(ids, vectors=True, texts=False)
        return np.asarray([vectors[i] for i in ids], dtype=np.float32)

    # ---- internals -------------------------------------------------------------------------

    def _check_intact(self) -> None:
        """Before blaming the index for a short answer: on a server, a version that a rebuild
        retired may be being deleted, which answers short before it answers "not found"."""
        if self.reopen is not None and self._retired():
            raise CollectionGoneError(f"{self.where}: a rebuild retired the version read")

    def _read_retired(self, exc: IndexUnavailableError) -> bool:
        """Did `exc` come from reading a version that a rebuild retired? (One being deleted
        fails in several ways; one deleted says "not found".)"""
        if self.reopen is None:
            return False
        if isinstance(exc, CollectionGoneError):
            return True
        try:
            return self._retired()
        except RecagentError:
            return False

    def _retired(self) -> bool:
        """Is the version read no longer the live one?"""
        assert self.reopen is not None
        live = self.reopen()
        return live is None or live.id != self.collection.id

    def _follow(self, seen: int) -> None:
        """Move to the live version after a rebuild deleted the one read (generation `seen`;
        another thread may have moved already). Refused when the live version was built
        differently: this index's catalog, embedder or template would not match it."""
        assert self.reopen is not None
        with self._following:
            if self._generation != seen:
                return
            collection = self.reopen()
            if collection is None:
                raise ArtifactError(
                    f"{self.where} was deleted while open; build it again with "
                    "`recagent index build`"
                )
            meta = IndexMeta.from_metadata(collection.metadata, self.where)
            problems = meta.mismatches(self.meta)
            if problems:
                detail = "; ".join(f"{k}: {v}" for k, v in problems.items())
                raise ArtifactError(
                    f"{self.where} was rebuilt differently since it was opened ({detail}); "
                    "open it again"
                )
            self.collection, self.meta = collection, meta
            for cached in ("_matrix", "_part_matrix", "_table", "match_threshold"):
                self.__dict__.pop(cached, None)
            self._alike_memo = {}
            self._generation += 1

    def _carried(self, hits: list[Hit]) -> list[Hit]:
        """In a blended space, name the parts that carried each hit: those in which it is
        among the `alike_rank` nearest items of the first of its `because_of` (else the part
        in which it comes closest to that). Other spaces: `hits` as they are."""
        ranking, parts = self.ranking, self.parts
        if ranking is None or not parts or not hits:
            return hits
        with_input = [h for h in hits if h.because_of]
        inputs = list(dict.fromkeys(h.because_of[0] for h in with_input))
        if not inputs:
            return hits
        ids = list(dict.fromkeys([h.item_id for h in with_input] + inputs))
        row = {item_id: r for r, item_id in enumerate(ids)}
        stored = self._stored(ids)
        level = self._alike_levels(inputs, stored[[row[i] for i in inputs]], ranking.alike_rank)
        place = {item_id: j for j, item_id in enumerate(inputs)}
        ref = np.array([place[h.because_of[0]] for h in with_input])
        a = stored[[row[h.item_id] for h in with_input]]
        b = stored[[row[h.because_of[0]] for h in with_input]]
        # per part, each hit's cosine with its input minus that input's alike level
        gaps = np.stack(
            [
                np.einsum("ij,ij->i", a[:, p.start : p.stop], b[:, p.start : p.stop]) / p.share
                - level[p.name][ref]
                for p in parts
            ],
            axis=1,
        )
        for hit, gap in zip(with_input, gaps, strict=True):
            carried = [p.name for p, g in zip(parts, gap, strict=True) if g >= -1e-6]
            hit.carried_by = carried or [parts[int(np.argmax(gap))].name]
        return hits

    def _alike_levels(
        self, inputs: list[str], queries: np.ndarray, rank: int
    ) -> dict[str, np.ndarray]:
        """Per part: each input's cosine with its `rank`-th nearest other item there
        (`queries`: their stored vectors). Remembered per item: an item's neighbours do not
        change while the index is open, and the same inputs come back turn after turn."""
        memo = self._alike_memo.setdefault(rank, {})
        todo = [j for j, i in enumerate(inputs) if i not in memo]
        if todo:
            for j, levels in zip(todo, self._alike_compute(queries[todo], rank), strict=True):
                memo[inputs[j]] = levels
        return {p.name: np.array([memo[i][p.name] for i in inputs]) for p in self.parts}

    def _alike_compute(self, queries: np.ndarray, rank: int) -> list[dict[str, float]]:
        if self._searched_exactly:
            per_part = {}
            for name, sims in self._part_sims(queries).items():
                r = min(rank, sims.shape[1] - 1)  # the query itself comes first
                per_part[name] = -np.partition(-sims, r, axis=1)[:, r]
        else:
            per_part = {
                p.name: np.array(
                    [
                        found[-1][1]
                        for found in self._nearest_plain(
                            self._weighted(queries, {p.name: 1.0}), rank + 1, Constraints()
                        )
                    ]
                )
                for p in self.parts
            }
        return [{n: float(v[j]) for n, v in per_part.items()} for j in range(len(queries))]

    def _known_ids(self, item_ids: Sequence[str], what: str, limit: int) -> list[str]:
        """`item_ids` deduplicated (first occurrence kept), all in the catalog."""
        ids = [item_ids] if isinstance(item_ids, str) else [str(i) for i in item_ids]
        if not ids:
            raise QueryError(f"{what} is empty; give at least one item id")
        if len(ids) > limit:
            raise QueryError(f"{what} has {len(ids)} items; at most {limit}")
        unknown = [i for i in ids if i not in self.catalog]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            raise ConstraintError(f"unknown item id(s) in {what}: {shown}")
        return list(dict.fromkeys(ids))

    def _records(
        self, ids: list[str], vectors: bool = False, texts: bool = True
    ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
        """Stored text and/or vectors of `ids`, in one round trip. Text is fetched only for
        final hits: Chroma reads documents record by record, which costs ~50 us each; with the
        index's template it is rendered here instead."""
        if not ids:
            return {}, {}
        rendered: dict[str, str] = {}
        if texts and self.template is not None:
            items = [self.catalog[i] for i in ids]
            rendered = dict(zip(ids, self.template.render_all(items), strict=True))
            texts = False
            if not vectors:
                return rendered, {}
        include: list[Any] = (["documents"] if texts else []) + (["embeddings"] if vectors else [])
        with chroma_errors(self.where):
            got = self.collection.get(ids=ids, include=include)
        missing = set(ids) - set(got["ids"])
        if missing:
            self._check_intact()
            raise QueryError(
                f"item(s) {', '.join(sorted(missing)[:5])} are in the catalog but not in the "
                "index; rebuild it with `recagent index build --rebuild`"
            )
        found = rendered
        if texts:
            documents = got["documents"] or []
            found = {i: d or "" for i, d in zip(got["ids"], documents, strict=True)}
        if not vectors:
            return found, {}
        stored = zip(got["ids"], _embeddings(got), strict=True)
        return found, {i: np.asarray(v, dtype=np.float32) for i, v in stored}

    def _explained(
        self, found: list[tuple[str, float]], inputs: list[str], vectors: np.ndarray
    ) -> list[Hit]:
        """Hits for `found`, each naming the inputs (rows of `vectors`) it is closest to."""
        texts, hit_vectors = self._records([i for i, _ in found], vectors=True)
        hits = []
        for item_id, score in found:
            sims = vectors @ hit_vectors[item_id]
            ranked = sorted(zip(sims.tolist(), inputs, strict=True), reverse=True)
            hits.append(
                Hit(item_id=item_id, score=score, text=texts[item_id], because_of=_because(ranked))
            )
        return hits

    def _nearest(
        self,
        queries: np.ndarray,
        n: int,
        f: Constraints,
        ranking: PartRanking | None = None,
    ) -> list[list[_Found]]:
        """Top-`n` (item_id, score) per query vector among items passing `f` (see the module
        docstring for how the filter is applied). A blended space (`ranking`, by default the
        index's, set) finds a pool by its recall weights, then orders the pool by its order
        weights."""
        ranking = ranking or self.ranking
        if ranking is None or not self.parts:
            return self._nearest_plain(queries, n, f)
        queries = np.asarray(queries, dtype=np.float32)
        if self._searched_exactly:
            allowed = None if f.is_empty() else self._mask.allowed(f)
            return self._blend_exact(queries, n, allowed, ranking)
        extra = sum(ranking.lookalikes.values())
        pools = self._nearest_plain(
            self._weighted(queries, ranking.recall), max(n, ranking.pool - extra), f
        )
        for name, m in ranking.lookalikes.items():
            alike = self._nearest_plain(self._weighted(queries, {name: 1.0}), m, f)
            pools = [[*a, *p] for a, p in zip(alike, pools, strict=True)]
        pools = [list(dict(per).items()) for per in pools]  # each item once
        union = list(dict.fromkeys(i for per in pools for i, _ in per))
        row = {item_id: r for r, item_id in enumerate(union)}
        stored = self._stored(union) if union else None  # one round trip for all queries
        out: list[list[_Found]] = []
        for q, per in zip(queries, pools, strict=True):
            if not per or stored is None:
                out.append([])
                continue
            found = stored[[row[i] for i, _ in per]]
            sims = _part_cosines(self.parts, found, q)
            score = sum(ranking.order.get(p.name, 0.0) * sims[p.name] for p in self.parts)
            scores = np.asarray(score, dtype=np.float64)
            # best first; ties keep the pool's order (its nearest first)
            order = np.lexsort((np.arange(len(per)), -scores))[:n]
            out.append([(per[j][0], float(scores[j])) for j in order])
        return out

    def _part_sims(
        self, queries: np.ndarray, names: set[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Per part (those in `names`, default all): the cosine of every query with every
        catalog item (Q, N), exactly."""
        return {
            p.name: (queries[:, p.start : p.stop] @ self._part_matrix[p.name].T) / p.share
            for p in self.parts
            if names is None or p.name in names
        }

    @cached_property
    def _part_matrix(self) -> dict[str, np.ndarray]:
        """Each part's columns of `_matrix`, contiguous (a column slice would be copied on
        every product)."""
        return {p.name: np.ascontiguousarray(self._matrix[:, p.start : p.stop]) for p in self.parts}

    def _blend_exact(
        self, queries: np.ndarray, n: int, allowed: np.ndarray | None, ranking: PartRanking
    ) -> list[list[_Found]]:
        """`_nearest` of a blended space over the in-memory vectors: the same two steps as
        the general path, as matrix operations over the whole catalog."""
        used = {
            name
            for weights in (ranking.recall, ranking.order, ranking.lookalikes)
            for name, w in weights.items()
            if w
        }
        sims = self._part_sims(queries, used)

        def mix(weights: dict[str, float]) -> np.ndarray:
            out = sum(weights.get(name, 0.0) * s for name, s in sims.items())
            scores = np.array(out, dtype=np.float32)
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            return scores

        recall, order = mix(ranking.recall), mix(ranking.order)
        extra = sum(ranking.lookalikes.values())
        count = recall.shape[1] if allowed is None else int(allowed.sum())
        found: list[list[_Found]] = []
        for row in range(len(queries)):
            pool = [_top(recall[row], max(n, ranking.pool - extra))]
            for name, m in ranking.lookalikes.items():
                alike = sims[name][row].copy()
                if allowed is not None:
                    alike[~allowed] = -np.inf
                pool.append(_top(alike, m))
            cols = np.unique(np.concatenate(pool))
            cols = cols[np.isfinite(order[row, cols])][: max(count, 0)]
            best = cols[np.lexsort((cols, -order[row, cols]))][:n]
            found.append([(self.catalog.id_at(int(j) + 1), float(order[row, j])) for j in best])
        return found

    def _stored(self, ids: list[str]) -> np.ndarray:
        """The stored vectors of `ids` (rows in that order): from the in-memory copy where the
        catalog is searched exactly, else from Chroma."""
        if self._searched_exactly:
            return self._matrix[[self.catalog.idx(i) - 1 for i in ids]]
        return self.embeddings(ids)

    def _weighted(self, queries: np.ndarray, weights: dict[str, float]) -> np.ndarray:
        """`queries` (stored blended vectors) with each part re-weighted: their dot product
        with a stored vector is the `weights` blend of the parts' cosines."""
        out = queries.copy()
        for p in self.parts:
            out[:, p.start : p.stop] *= weights.get(p.name, 0.0) / p.share
        return out

    def _nearest_plain(self, queries: np.ndarray, n: int, f: Constraints) -> list[list[_Found]]:
        total = len(self.catalog)
        if self._searched_exactly:
            return self._exact_all(queries, n, None if f.is_empty() else self._mask.allowed(f))
        if f.is_empty():
            return self._query(queries, min(n, total), None)
        allowed = self._mask.allowed(f)
        count = int(allowed.sum())
        if count == 0:
            return [[] for _ in queries]
        if count <= self.config.exact_max_items and self._table is not None:
            return self._exact_rows(queries, n, np.flatnonzero(allowed))
        if f.include_ids is not None and count <= EXACT_LIMIT:
            ids = [self.catalog.id_at(int(i) + 1) for i in np.flatnonzero(allowed)]
            return self._exact(queries, n, ids)
        plain = allowed if f.include_ids is None and not f.exclude_ids else None
        passing = max(
            int((plain if plain is not None else self._mask.allowed(f, ids=False)).sum()), 1
        )
        # enough unfiltered neighbours that ~n of them pass, plus every excluded id
        fetch = math.ceil(n * total / passing * OVERFETCH_SAFETY) + len(f.exclude_ids) + 10
        limit = max(self.config.max_overfetch, 0)
        while limit and (fetch <= limit or total <= limit):
            fetch = min(fetch, total)
            rows = self._query(queries, fetch, None)
            kept = [[r for r in per if allowed[self.catalog.idx(r[0]) - 1]][:n] for per in rows]
            if fetch == total or all(len(k) >= min(n, count) for k in kept):
                return kept
            if fetch >= limit:
                break
            fetch = min(fetch * 4, limit)  # try bigger before the O(catalog) `where`
        if self._table is not None:  # every passing item, exactly: far cheaper than `where`
            return self._exact_rows(queries, n, np.flatnonzero(allowed))
        return self._query(queries, min(n, count), where_clause(f))

    def _query(
        self, queries: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[list[_Found]]:
        with chroma_errors(self.where):
            res = self.collection.query(
                query_embeddings=queries, n_results=n, where=where, include=["distances"]
            )
        distances = res["distances"] or []
        if where is None and any(len(found) < n for found in res["ids"]):
            self._check_intact()  # short of the n that every item would give
        return [
            [(i, 1.0 - float(d)) for i, d in zip(res["ids"][q], distances[q], strict=True)]
            for q in range(len(queries))
        ]

    @cached_property
    def _table(self) -> np.ndarray | None:
        """The vectors written beside the embedded store at build time, memory-mapped (None:
        an index on a server, or one built before the table existed)."""
        if self.table_path is None or not self.table_path.is_file():
            return None
        try:
            table = np.load(self.table_path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        return table if table.shape == (len(self.catalog), self.meta.dim) else None

    def _exact_rows(self, queries: np.ndarray, n: int, rows: np.ndarray) -> list[list[_Found]]:
        """Top-`n` among catalog `rows` (item_idx - 1, ascending), scored exactly against the
        vector table, `TABLE_CHUNK` rows at a time; ties by catalog order."""
        assert self._table is not None
        queries = np.asarray(queries, dtype=np.float32)
        best: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, scores) per query so far
        for start in range(0, len(rows), TABLE_CHUNK):
            part = rows[start : start + TABLE_CHUNK]
            scores = queries @ np.asarray(self._table[part], dtype=np.float32).T
            for q, row in enumerate(scores):
                keep = _top(row, n)
                if start == 0:
                    best.append((part[keep], row[keep]))
                    continue
                ids = np.concatenate([best[q][0], part[keep]])
                vals = np.concatenate([best[q][1], row[keep]])
                order = np.lexsort((ids, -vals))[:n]
                best[q] = (ids[order], vals[order])
        return [
            [(self.catalog.id_at(int(r) + 1), float(v)) for r, v in zip(*found, strict=True)]
            for found in best
        ] or [[] for _ in queries]

    @cached_property
    def _matrix(self) -> np.ndarray:
        """Every stored vector, row i = the catalog's item i + 1 (read once, for exact search
        over small catalogs: from the vector table when there is one, else from Chroma)."""
        if self._table is not None:
            return np.array(self._table, dtype=np.float32)
        with chroma_errors(self.where):
            got = self.collection.get(include=["embeddings"])
        ids = self.catalog.item_ids
        if len(got["ids"]) != len(ids):
            self._check_intact()
            raise QueryError(
                f"the index holds {len(got['ids'])} items, the catalog {len(ids)}; rebuild it "
                "with `recagent index build --rebuild`"
            )
        stored = _embeddings(got)
        matrix = np.zeros((len(ids), len(stored[0]) if len(stored) else 0), dtype=np.float32)
        for item_id, vector in zip(got["ids"], stored, strict=True):
            if item_id not in self.catalog:
                raise QueryError(
                    f"item {item_id!r} is in the index but not in the catalog; rebuild it with "
                    "`recagent index build --rebuild`"
                )
            matrix[self.catalog.idx(item_id) - 1] = vector
        return matrix

    def _exact_all(
        self, queries: np.ndarray, n: int, allowed: np.ndarray | None
    ) -> list[list[_Found]]:
        """Top-`n` over the whole catalog (or the items `allowed`), exactly; ties by catalog
        order."""
        scores = np.asarray(queries, dtype=np.float32) @ self._matrix.T  # (Q, N)
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        n = min(n, scores.shape[1] if allowed is None else int(allowed.sum()))
        return [
            [(self.catalog.id_at(int(j) + 1), float(row[j])) for j in _top(row, n)]
            for row in scores
        ]

    def _exact(self, queries: np.ndarray, n: int, ids: list[str]) -> list[list[_Found]]:
        """Top-`n` among `ids` (vectors fetched from Chroma), exactly; ties by list order."""
        _, stored = self._records(ids, vectors=True, texts=False)
        matrix = np.stack([stored[i] for i in ids])
        return [[(ids[j], float(row[j])) for j in _top(row, n)] for row in queries @ matrix.T]


def _embeddings(got: Any) -> Any:
    """The vectors of a Chroma `get` that asked for them."""
    stored = got["embeddings"]
    if stored is None:
        raise QueryError("the index returned no vectors; rebuild it with `recagent index build`")
    return stored


def _part_cosines(
    parts: Sequence[VectorPart], vectors: np.ndarray, query: np.ndarray
) -> dict[str, np.ndarray]:
    """Per part: the cosine of each row of `vectors` with `query` in that part's space (both
    stored with the part's share of the length)."""
    return {
        p.name: (vectors[:, p.start : p.stop] @ query[p.start : p.stop]) / p.share for p in parts
    }


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Column indices of the `n` highest `scores`, best first, ties by column order."""
    return top_k(scores, n)


def _because(ranked: list[tuple[float, str]]) -> list[str]:
    """Input ids whose similarity is within `BECAUSE_MARGIN` of the best, best first."""
    if not ranked:
        return []
    top = ranked[0][0]
    return list(dict.fromkeys(i for s, i in ranked if s >= top - BECAUSE_MARGIN))[:MAX_BECAUSE]


__all__ = [
    "EXACT_LIMIT",
    "MAX_K",
    "Hit",
    "ItemIndex",
    "PartRanking",
    "QueryError",
    "VectorPart",
    "check_k",
]
