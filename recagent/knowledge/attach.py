"""Putting stored knowledge on a loaded dataset's items (`Item.knowledge`)."""

from __future__ import annotations

from collections.abc import Sequence

from recagent.data.catalog import Catalog, Item
from recagent.knowledge.parse import knowledge_text
from recagent.knowledge.store import read_current, text_hash
from recagent.workspace import Workspace


def item_line(item: Item) -> str:
    """What the knowledge prompt is told about an item: 'Brazil (1985) | Fantasy, Sci-Fi'.
    Never its free text (users' tags on MovieLens) or other columns."""
    categories = ", ".join(item.genres)
    return f"{item.label} | {categories}" if categories else item.label


def item_hashes(items: Sequence[Item]) -> dict[str, str]:
    return {item.item_id: text_hash(item_line(item)) for item in items}


def with_knowledge(catalog: Catalog, workspace: Workspace, dataset: str) -> Catalog:
    """`catalog` with each item's current knowledge on it (the same catalog when none was
    built)."""
    items = list(catalog)
    answers = read_current(workspace, dataset, item_hashes(items))
    known = {i: knowledge_text(a.aspects) for i, a in answers.items() if a.status == "ok"}
    if not known:
        return catalog
    return Catalog(
        [
            it.model_copy(update={"knowledge": known[it.item_id]}) if it.item_id in known else it
            for it in items
        ]
    )


__all__ = ["item_hashes", "item_line", "with_knowledge"]
