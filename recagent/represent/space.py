"""The spaces "more like this" and history similarity search, next to the text index
(recagent.index.store): the item encoder's co-watch space (`cowatch`) and the blend of text
and co-watch similarity (`blend`, recagent.represent.blend), each its own Chroma collection.

Both are derived entirely from the trained encoder and the catalog, so they are rebuilt
whenever either changes (a retrained encoder has a new name, which makes the old collection
stale); the blend's weights are applied at query time, so a new choice rebuilds nothing. Free-text
search always stays in the text space (a query has no co-occurrence signal).

`[index] similar_space` picks: `text`; `cowatch`; `blend`; or `auto` (the default): the text
index unless the encoder beat the text vectors on valid, else the blend as chosen on valid
(which may come out all co-watch, the co-watch space itself, or all text, the text index).
"""

from __future__ import annotations

from pydantic import BaseModel

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.index.embedders import Embedder
from recagent.index.item_index import ItemIndex
from recagent.index.store import build_index, index_status, open_index
from recagent.progress import Reporter
from recagent.represent.blend import BlendChoice, BlendEmbedder, choose_blend, saved_blend
from recagent.represent.encoder import ItemEncoder, load_item_encoder
from recagent.workspace import Workspace

SPACE = "cowatch"
BLEND = "blend"


class SimilarSpace(BaseModel):
    """Which space similar_items searches, and why."""

    space: str  # text, cowatch or blend
    why: str
    setting: str | None = None  # how a blend ranks (BlendSetting.label)


def decide_space(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder | None,
    reporter: Reporter | None = None,
    choose: bool = True,
) -> tuple[SimilarSpace, BlendChoice | None]:
    """The space `config.similar_space` amounts to with this encoder (see the module
    docstring); a blend's weight is chosen on valid if it was not yet (unless `choose` is
    false: then the space is `blend`, its weight to be chosen on first use)."""
    wanted = config.similar_space
    if wanted == "text":
        return SimilarSpace(space="text", why="index.similar_space = text"), None
    if encoder is None:
        why = "no item encoder: `recagent train item-encoder`"
        return SimilarSpace(space="text", why=why), None
    if wanted == "cowatch":
        return SimilarSpace(space=SPACE, why="index.similar_space = cowatch"), None
    if wanted == "auto" and not encoder.won_on_valid:
        why = "the item encoder did not beat the text vectors on valid"
        return SimilarSpace(space="text", why=why), None
    if choose:
        choice = choose_blend(workspace, dataset, config, encoder, reporter)
    elif (saved := saved_blend(workspace, dataset, config, encoder)) is not None:
        choice = saved
    else:
        why = "text and co-watch similarity blended as chosen on valid at first use"
        return SimilarSpace(space=BLEND, why=why), None
    setting = choice.setting
    space = BLEND if wanted == BLEND else setting.space
    why = f"more like this: {setting.label}; history: {choice.history.label}; chosen on valid"
    if wanted == BLEND:
        why += " (index.similar_space = blend)"
    return SimilarSpace(space=space, why=why, setting=setting.label), choice


def build_similar_index(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder,
    reporter: Reporter | None = None,
) -> SimilarSpace:
    """(Re)build the collection of the space `config` amounts to, unless it is fresh."""
    return _ready(workspace, dataset, config, encoder, reporter)[0]


def open_similar_index(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
) -> ItemIndex | None:
    """The space similar_items searches, built or rebuilt as needed; None when that is the
    text index."""
    encoder = load_item_encoder(workspace, dataset, config, embedder)
    if encoder is None:
        return None
    return _open(workspace, dataset, config, encoder, reporter)


def _open(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder,
    reporter: Reporter | None,
) -> ItemIndex | None:
    decided, embedder = _ready(workspace, dataset, config, encoder, reporter)
    if embedder is None:
        return None
    index = open_index(workspace, dataset, config, embedder=embedder, space=decided.space)
    if isinstance(embedder, BlendEmbedder):
        index.parts = embedder.parts()
        index.ranking = embedder.choice.setting.ranking()
        index.history_ranking = embedder.choice.history.ranking()
    return index


def space_embedder(
    decided: SimilarSpace, encoder: ItemEncoder, choice: BlendChoice | None
) -> Embedder | None:
    """What the collection of the space decided is built with (None: the text index, or a
    blend whose setting is not chosen yet)."""
    if decided.space == SPACE:
        return encoder
    if decided.space == BLEND and choice is not None:
        return BlendEmbedder(encoder, choice)
    return None


def _ready(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder,
    reporter: Reporter | None,
) -> tuple[SimilarSpace, Embedder | None]:
    """The space decided, its collection fresh, and the embedder it is built with (None: the
    text index)."""
    decided, choice = decide_space(workspace, dataset, config, encoder, reporter)
    embedder = space_embedder(decided, encoder, choice)
    if embedder is not None:
        status = index_status(workspace, dataset, config, embedder, decided.space)
        if status.state != "fresh":
            build_index(
                workspace,
                dataset,
                config,
                embedder=embedder,
                reporter=reporter,
                space=decided.space,
            )
    return decided, embedder


def open_cowatch_index(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
) -> ItemIndex | None:
    """The co-watch space itself, built or rebuilt as needed; None when no encoder is trained
    or the trained one did not beat the text vectors on valid."""
    encoder = load_item_encoder(workspace, dataset, config, embedder)
    if encoder is None or not encoder.won_on_valid:
        return None
    cowatch = config.model_copy(update={"similar_space": SPACE})
    return _open(workspace, dataset, cowatch, encoder, reporter)


__all__ = [
    "BLEND",
    "SPACE",
    "SimilarSpace",
    "build_similar_index",
    "decide_space",
    "open_cowatch_index",
    "open_similar_index",
    "space_embedder",
]
