"""Hard constraints on which items may be recommended: wanted and unwanted genres, a year
range, and item ids to keep or leave out.

One model for every place that enforces them: the request's reading, the guard, the
`filter_items` tool and the index's recall filter (`recagent.index.filters` turns a
resolved `Constraints` into a Chroma `where` clause and a catalog mask). `resolve` checks a
value against one catalog (genre words -> the catalog's genres, ids known) and raises the one
error type for a bad constraint, `ConstraintError`; `admits` then says why an item fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from recagent.data.catalog import Catalog, Item
from recagent.data.genres import resolver_for
from recagent.errors import RecagentError

MAX_IDS = 10_000
Reason = Literal["genre", "excluded_genre", "year", "excluded", "not_included"]


class ConstraintError(RecagentError):
    """A constraint names something the catalog does not have (a genre, an item id)."""


class Constraints(BaseModel):
    """Hard constraints on items. Genre names may be written as people write them ("sci fi",
    "romcom") until `resolve` maps them to the catalog's genres."""

    model_config = ConfigDict(extra="forbid")

    genres_all: list[str] = Field(
        default_factory=list, description="Keep items with all of these genres."
    )
    genres_any: list[str] = Field(
        default_factory=list, description="Keep items with at least one of these genres."
    )
    genres_none: list[str] = Field(
        default_factory=list, description="Drop items with any of these genres."
    )
    year_min: int | None = Field(None, description="Released in or after this year.")
    year_max: int | None = Field(None, description="Released in or before this year.")
    include_ids: list[str] | None = Field(
        None, max_length=MAX_IDS, description="Only these item ids."
    )
    exclude_ids: list[str] = Field(
        default_factory=list, max_length=MAX_IDS, description="Never these item ids."
    )
    _catalog: int | None = PrivateAttr(default=None)  # id() of the catalog resolved against
    _sets: tuple[frozenset[str], ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _years_in_order(self) -> Constraints:
        low, high = self.year_min, self.year_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"year_min {low} is after year_max {high}")
        return self

    def resolve(self, catalog: Catalog) -> Constraints:
        """These constraints with the catalog's genre names and only known ids; an unknown
        genre or id is a `ConstraintError` (listing the valid genres)."""
        if self._catalog == id(catalog):
            return self
        resolver = resolver_for(tuple(catalog.genres))

        def genres(words: list[str]) -> list[str]:
            out: list[str] = []
            for word in words:
                found = resolver.expand(word)
                if not found:
                    valid = ", ".join(catalog.genres) or "(this catalog has no genres)"
                    raise ConstraintError(f"unknown genre {word!r}; valid genres: {valid}")
                out.extend(g for g in found if g not in out)
            return out

        unknown = [i for i in [*(self.include_ids or []), *self.exclude_ids] if i not in catalog]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ConstraintError(f"unknown item id(s) in the constraints: {shown}{more}")
        resolved = Constraints.model_construct(
            genres_all=genres(self.genres_all),
            genres_any=genres(self.genres_any),
            genres_none=genres(self.genres_none),
            year_min=self.year_min,
            year_max=self.year_max,
            include_ids=None if self.include_ids is None else list(dict.fromkeys(self.include_ids)),
            exclude_ids=list(dict.fromkeys(self.exclude_ids)),
        )
        resolved._catalog = id(catalog)
        return resolved

    def _lookup(self) -> tuple[frozenset[str], ...]:
        if self._sets is None:
            self._sets = (
                frozenset(self.genres_all),
                frozenset(self.genres_any),
                frozenset(self.genres_none),
                frozenset(self.include_ids or ()),
                frozenset(self.exclude_ids),
            )
        return self._sets

    def admits(self, item: Item) -> Reason | None:
        """Why `item` fails these constraints (None when it passes). Genres compare by name,
        so resolve the constraints against the item's catalog first."""
        all_, any_, none, include, exclude = self._lookup()
        if item.item_id in exclude:
            return "excluded"
        if self.include_ids is not None and item.item_id not in include:
            return "not_included"
        have = set(item.genres)
        if (all_ and not all_ <= have) or (any_ and not any_ & have):
            return "genre"
        if none & have:
            return "excluded_genre"
        if self.year_min is not None and (item.year is None or item.year < self.year_min):
            return "year"
        if self.year_max is not None and (item.year is None or item.year > self.year_max):
            return "year"
        return None

    def is_empty(self) -> bool:
        return not (
            self.genres_all
            or self.genres_any
            or self.genres_none
            or self.year_min is not None
            or self.year_max is not None
            or self.include_ids is not None
            or self.exclude_ids
        )

    def excluding(self, ids: Iterable[str]) -> Constraints:
        """The same constraints, also leaving out `ids` (resolved state kept)."""
        extra = [i for i in ids if i not in self._lookup()[4]]
        if not extra:
            return self
        out = self.model_copy(update={"exclude_ids": [*self.exclude_ids, *extra]})
        out._catalog, out._sets = self._catalog, None
        return out

    def relaxed(self) -> Constraints:
        """Only the id constraints (what is left when genres and years cannot be met)."""
        out = Constraints.model_construct(
            genres_all=[],
            genres_any=[],
            genres_none=[],
            year_min=None,
            year_max=None,
            include_ids=self.include_ids,
            exclude_ids=list(self.exclude_ids),
        )
        out._catalog = self._catalog
        return out

    def describe(self) -> str:
        """The constraints in words, for notices and the run log."""
        parts = []
        if self.genres_all:
            parts.append(" and ".join(self.genres_all))
        if self.genres_any:
            parts.append(" or ".join(self.genres_any))
        if self.genres_none:
            parts.append("no " + ", ".join(self.genres_none))
        if self.year_min is not None and self.year_max is not None:
            parts.append(f"{self.year_min}-{self.year_max}")
        elif self.year_min is not None:
            parts.append(f"from {self.year_min}")
        elif self.year_max is not None:
            parts.append(f"up to {self.year_max}")
        return ", ".join(parts)


__all__ = ["MAX_IDS", "ConstraintError", "Constraints", "Reason"]
