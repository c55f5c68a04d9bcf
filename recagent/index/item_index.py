"""Queries over a built index: text -> items, items -> similar items, history -> items.

Scores are cosine similarities (1 = same direction). Every hit carries the item text that was
embedded, and similarity hits name the input items that made them similar.

Filters: Chroma's embedded store evaluates a `where` filter by scanning every record, so a
filtered query costs O(catalog) (tens of ms at 100k items; see benchmarks/RESULTS.md). When a
filter keeps most of the catalog, fetching a few more unfiltered neighbours and filtering them
here is much faster and gives the same items. `_nearest` therefore picks, per query: no
filter; exact scoring of an explicit id list; over-fetch and filter here (at most
`max_overfetch` neighbours); or the Chroma `where` clause when the filter is selective or the
over-fetch came up short.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.config import IndexConfig
from recagent.data.catalog import Catalog
from recagent.errors import RecagentError
from recagent.index.chroma import IndexMeta, chroma_errors
from recagent.index.embedders import Embedder, checked_embed
from recagent.index.filters import CatalogMask, FilterError, ItemFilters, ResolvedFilters

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MAX_K = 1000
MAX_QUERY_CHARS = 4000
MAX_INPUT_ITEMS = 500
MAX_HISTORY = 10_000
EXACT_LIMIT = 2048  # include_ids lists up to this size are scored exactly
OVERFETCH_SAFETY = 1.5
BECAUSE_MARGIN = 0.05  # input items within this similarity of the best one also count
MAX_BECAUSE = 3


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


@dataclass
class _Row:
    item_id: str
    score: float
    text: str
    vector: np.ndarray | None = None


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


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
    ) -> None:
        self.collection = collection
        self.catalog = catalog
        self.embedder = embedder
        self.meta = meta
        self.config = config
        self.where = where
        self._client = client

    def __len__(self) -> int:
        return self.meta.items

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None

    def __enter__(self) -> ItemIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def _mask(self) -> CatalogMask:
        return CatalogMask(self.catalog)

    # ---- public queries -------------------------------------------------------------------

    def search(self, query: str, k: int = 10, filters: ItemFilters | None = None) -> list[Hit]:
        """Items whose text is nearest to `query`."""
        text = " ".join((query or "").split())
        if not text:
            raise QueryError("the query is empty; describe what to look for")
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(
                f"the query is {len(text)} characters long; keep it under {MAX_QUERY_CHARS}"
            )
        f = ResolvedFilters.of(filters, self.catalog)
        vector = checked_embed(self.embedder, [text], self.meta.dim)
        rows = self._nearest(vector, check_k(k), f)[0]
        return [Hit(item_id=r.item_id, score=r.score, text=r.text) for r in rows]

    def similar_to_items(
        self, item_ids: Sequence[str], k: int = 10, filters: ItemFilters | None = None
    ) -> list[Hit]:
        """Items nearest to any of `item_ids` (never those items themselves)."""
        ids = self._known_ids(item_ids, "item_ids", MAX_INPUT_ITEMS)
        f = ResolvedFilters.of(filters, self.catalog).without_ids(set(ids))
        vectors = self.embeddings(ids)
        rows = self._nearest(vectors, check_k(k), f, with_vectors=True)
        merged: dict[str, _Row] = {}
        for per_query in rows:
            for r in per_query:
                if r.item_id not in merged or r.score > merged[r.item_id].score:
                    merged[r.item_id] = r
        best = sorted(merged.values(), key=lambda r: -r.score)[:k]
        return [self._explained(r, r.score, ids, vectors) for r in best]

    def similar_to_history(
        self,
        history: Sequence[str],
        k: int = 10,
        filters: ItemFilters | None = None,
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
        f = ResolvedFilters.of(filters, self.catalog).without_ids(set(ids))
        k = check_k(k)
        strategy = strategy or self.config.history_strategy
        if strategy == "centroid":
            centroid = (weights[:, None] * vectors).sum(axis=0, keepdims=True)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            rows = self._nearest(centroid, k, f, with_vectors=True)[0]
            return [self._explained(r, r.score, window, vectors) for r in rows]
        if strategy != "maxsim":
            raise QueryError(f"unknown history strategy {strategy!r}: centroid or maxsim")
        rows = self._nearest(vectors, k, f)
        best: dict[str, tuple[float, _Row, list[tuple[float, str]]]] = {}
        for i, per_query in enumerate(rows):
            for r in per_query:
                weighted = float(weights[i]) * r.score
                score, row, sources = best.get(r.item_id, (-math.inf, r, []))
                sources.append((r.score, window[i]))
                best[r.item_id] = (max(score, weighted), row, sources)
        top = sorted(best.values(), key=lambda t: -t[0])[:k]
        return [
            Hit(
                item_id=row.item_id,
                score=score,
                text=row.text,
                because_of=_because(sorted(sources, reverse=True)),
            )
            for score, row, sources in top
        ]

    def embeddings(self, item_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `item_ids`, in that order."""
        ids = list(item_ids)
        with chroma_errors(self.where):
            got = self.collection.get(ids=ids, include=["embeddings"])
        by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise QueryError(
                f"item(s) {', '.join(missing[:5])} are in the catalog but not in the index; "
                "rebuild it with `recagent index build --rebuild`"
            )
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)

    # ---- internals -------------------------------------------------------------------------

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
            raise FilterError(f"unknown item id(s) in {what}: {shown}")
        return list(dict.fromkeys(ids))

    def _explained(self, row: _Row, score: float, inputs: list[str], vectors: np.ndarray) -> Hit:
        sims = vectors @ row.vector if row.vector is not None else np.zeros(len(inputs))
        ranked = sorted(zip(sims.tolist(), inputs, strict=True), reverse=True)
        return Hit(item_id=row.item_id, score=score, text=row.text, because_of=_because(ranked))

    def _nearest(
        self, queries: np.ndarray, n: int, f: ResolvedFilters, with_vectors: bool = False
    ) -> list[list[_Row]]:
        """Top-`n` rows per query vector that pass `f` (see the module docstring)."""
        total = len(self.catalog)
        if f.is_empty():
            return self._query(queries, min(n, total), None, with_vectors)
        allowed = self._mask.allowed(f)
        count = int(allowed.sum())
        if count == 0:
            return [[] for _ in queries]
        if f.include_ids is not None and count <= EXACT_LIMIT:
            ids = [self.catalog.id_at(int(i) + 1) for i in np.flatnonzero(allowed)]
            return self._exact(queries, n, ids, with_vectors)
        passing = max(int(self._mask.allowed(f, ids=False).sum()), 1)
        fetch = math.ceil(n * total / passing * OVERFETCH_SAFETY) + len(f.exclude_ids)
        limit = self.config.max_overfetch
        if fetch <= limit or total <= limit:
            fetch = min(fetch, total)
            rows = self._query(queries, fetch, None, with_vectors)
            kept = [
                [r for r in per if allowed[self.catalog.idx(r.item_id) - 1]][:n] for per in rows
            ]
            if fetch == total or all(len(k) >= min(n, count) for k in kept):
                return kept
        return self._query(queries, min(n, count), f.where_clause(), with_vectors)

    def _query(
        self, queries: np.ndarray, n: int, where: dict[str, Any] | None, with_vectors: bool
    ) -> list[list[_Row]]:
        include: list[Any] = ["documents", "distances"] + (["embeddings"] if with_vectors else [])
        with chroma_errors(self.where):
            res = self.collection.query(
                query_embeddings=queries, n_results=n, where=where, include=include
            )
        out = []
        for q in range(len(queries)):
            vectors = res["embeddings"][q] if with_vectors and res.get("embeddings") else None
            out.append(
                [
                    _Row(
                        item_id,
                        1.0 - float(dist),
                        doc or "",
                        None if vectors is None else np.asarray(vectors[j], dtype=np.float32),
                    )
                    for j, (item_id, dist, doc) in enumerate(
                        zip(res["ids"][q], res["distances"][q], res["documents"][q], strict=True)
                    )
                ]
            )
        return out

    def _exact(
        self, queries: np.ndarray, n: int, ids: list[str], with_vectors: bool
    ) -> list[list[_Row]]:
        with chroma_errors(self.where):
            got = self.collection.get(ids=ids, include=["embeddings", "documents"])
        matrix = np.asarray(got["embeddings"], dtype=np.float32)
        scores = queries @ matrix.T
        out = []
        for q in range(len(queries)):
            order = np.argsort(-scores[q], kind="stable")[:n]
            out.append(
                [
                    _Row(
                        got["ids"][j],
                        float(scores[q, j]),
                        got["documents"][j] or "",
                        matrix[j] if with_vectors else None,
                    )
                    for j in order
                ]
            )
        return out


def _because(ranked: list[tuple[float, str]]) -> list[str]:
    """Input ids whose similarity is within `BECAUSE_MARGIN` of the best, best first."""
    if not ranked:
        return []
    top = ranked[0][0]
    return list(dict.fromkeys(i for s, i in ranked if s >= top - BECAUSE_MARGIN))[:MAX_BECAUSE]


__all__ = ["EXACT_LIMIT", "MAX_K", "Hit", "ItemIndex", "QueryError", "check_k"]
