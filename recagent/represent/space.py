"""The co-watch vector space: the item encoder's vectors in their own Chroma collection next
to the text one (recagent.index.store, space `cowatch`).

It is derived entirely from the trained encoder and the catalog, so it is rebuilt whenever
either changes (a retrained encoder has a new name, which makes the old collection stale).
"More like this" and history similarity use it only when the encoder beat the raw text
vectors on the valid split; free-text search always stays in the text space (a query has no
co-occurrence signal)."""

from __future__ import annotations

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.index.embedders import Embedder
from recagent.index.item_index import ItemIndex
from recagent.index.store import build_index, index_status, open_index
from recagent.progress import Reporter
from recagent.represent.encoder import ItemEncoder, load_item_encoder
from recagent.workspace import Workspace

SPACE = "cowatch"


def build_cowatch_index(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder,
    reporter: Reporter | None = None,
) -> None:
    """(Re)build the co-watch collection unless it is fresh for this encoder and catalog."""
    status = index_status(workspace, dataset, config, encoder, SPACE)
    if status.state != "fresh":
        build_index(workspace, dataset, config, embedder=encoder, reporter=reporter, space=SPACE)


def open_cowatch_index(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
) -> ItemIndex | None:
    """The co-watch space, built or rebuilt as needed; None when no encoder is trained or
    the trained one did not beat the text vectors on valid."""
    encoder = load_item_encoder(workspace, dataset, config, embedder)
    if encoder is None or not encoder.won_on_valid:
        return None
    build_cowatch_index(workspace, dataset, config, encoder, reporter)
    return open_index(workspace, dataset, config, embedder=encoder, space=SPACE)


__all__ = ["SPACE", "build_cowatch_index", "open_cowatch_index"]
