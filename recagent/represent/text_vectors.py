"""The base text vector of every catalog item: its text from the index template, embedded by
the configured embedder (WordLlama by default), as one (n_items + 1, dim) matrix whose row
item_idx holds that item (row 0, padding, is zero).

Computed once per (catalog, embedder, template) and cached in the workspace with a manifest,
so the item encoder and text alignment read the same vectors the index was built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.index.chroma import catalog_fingerprint
from recagent.index.embedders import Embedder, checked_embed, make_embedder
from recagent.index.text import load_template
from recagent.manifest import Fingerprint, Manifest
from recagent.progress import Reporter, SilentReporter
from recagent.workspace import Workspace, atomic_path

VECTORS_FILE = "vectors.npy"
BATCH = 512


@dataclass(frozen=True)
class TextVectors:
    """Row item_idx = that item's unit-length text vector (row 0 = zeros)."""

    matrix: np.ndarray
    embedder: str
    key: str  # fingerprint of (catalog, embedder, template)
    source: str = ""  # fingerprint of (embedder, template): the same for any catalog
    settings: tuple[str, str] = ("", "")  # IndexConfig (embedder, template) that made them

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def text_vectors(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
) -> TextVectors:
    """The cached vectors when their manifest matches, else embedded now and cached."""
    embedder = embedder or make_embedder(config)
    template = load_template(config.template)
    key = (
        Fingerprint()
        .text(catalog_fingerprint(dataset.catalog))
        .text(embedder.name)
        .text(str(embedder.dim))
        .text(template.hash)
        .hexdigest()
    )
    source = Fingerprint().text(embedder.name).text(str(embedder.dim)).text(template.hash)
    made = (key, source.hexdigest(), (config.embedder, config.template))
    folder = workspace.models_dir(dataset.name) / "text-vectors"
    try:
        if Manifest.read(folder).fingerprint == key:
            matrix = np.load(folder / VECTORS_FILE, allow_pickle=False)
            if matrix.shape == (dataset.n_items + 1, embedder.dim):
                return TextVectors(matrix.astype(np.float32), embedder.name, *made)
    except (ArtifactError, OSError, ValueError):
        pass
    items = list(dataset.catalog)
    matrix = np.zeros((len(items) + 1, embedder.dim), dtype=np.float32)
    report = reporter or SilentReporter()
    with report.stage(f"embedding {len(items):,} item texts ({embedder.name})", len(items)) as adv:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            rows = [dataset.catalog.idx(it.item_id) for it in batch]
            matrix[rows] = checked_embed(embedder, template.render_all(batch), embedder.dim)
            adv(len(batch))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / VECTORS_FILE) as tmp, tmp.open("wb") as fh:
        np.save(fh, matrix, allow_pickle=False)
    Manifest(
        kind="text-vectors",
        name=dataset.name,
        fingerprint=key,
        config={"embedder": embedder.name, "template": template.name},
        inputs={"data": dataset.fingerprint},
        stats={"items": len(items), "dim": embedder.dim},
    ).write(folder)
    return TextVectors(matrix, embedder.name, *made)


__all__ = ["TextVectors", "text_vectors"]
