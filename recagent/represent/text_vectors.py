"""The base text vector of every catalog item: its text from the index template, embedded by
the configured embedder (WordLlama by default), as one (n_items + 1, dim) matrix whose row
item_idx holds that item (row 0, padding, is zero).

Cached in the workspace per embedder and per item text (see `text_vectors`), so the item
encoder and text alignment read the same vectors the index was built from, and a slow
embedder embeds each text once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

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

CACHE_FILE = "vectors.npz"
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
    """Every item's vector, embedding only texts this embedder has not embedded before.

    The cache is per text, not per catalog: a vector is stored under the hash of the exact
    text it came from, so a changed catalog or template re-embeds only the items whose text
    changed (what makes a slow or paid embedder, such as an LLM endpoint, affordable)."""
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
    items = list(dataset.catalog)
    texts = template.render_all(items)
    hashes = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]
    slug = Fingerprint().text(embedder.name).hexdigest()[:16]
    folder = workspace.cache_dir / "text-vectors" / slug
    cached = _read_cache(folder, embedder)
    matrix = np.zeros((len(items) + 1, embedder.dim), dtype=np.float32)
    missing = []
    for row, h in enumerate(hashes, start=1):
        if h in cached:
            matrix[row] = cached[h]
        else:
            missing.append(row)
    if missing:
        report = reporter or SilentReporter()
        what = f"embedding {len(missing):,} item texts ({embedder.name})"
        with report.stage(what, len(missing)) as adv:
            for start in range(0, len(missing), BATCH):
                rows = missing[start : start + BATCH]
                batch = [texts[r - 1] for r in rows]
                matrix[rows] = checked_embed(embedder, batch, embedder.dim)
                adv(len(rows))
        cached.update({hashes[r - 1]: matrix[r] for r in missing})
        _write_cache(folder, embedder, cached)
    # rows follow the catalog's item_idx order (item_idx i = the i-th item)
    order = [dataset.catalog.idx(it.item_id) for it in items]
    if order != list(range(1, len(items) + 1)):
        raise ArtifactError(f"{dataset.name}: catalog order and item_idx disagree")
    return TextVectors(matrix, embedder.name, *made)


def _read_cache(folder: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    try:
        manifest = Manifest.read(folder)
        if manifest.name != embedder.name or manifest.stats.get("dim") != embedder.dim:
            return {}
        with np.load(folder / CACHE_FILE, allow_pickle=False) as z:
            hashes, vectors = z["hashes"], z["vectors"]
        if vectors.shape != (len(hashes), embedder.dim):
            return {}
        return {str(h): v for h, v in zip(hashes.tolist(), vectors, strict=True)}
    except (ArtifactError, OSError, KeyError, ValueError):
        return {}  # no cache, or a damaged one: embed again


def _write_cache(folder: Path, embedder: Embedder, cached: dict[str, np.ndarray]) -> None:
    hashes = np.array(list(cached), dtype="<U32")
    vectors = np.stack(list(cached.values())).astype(np.float32)
    with atomic_path(folder / CACHE_FILE) as tmp, tmp.open("wb") as fh:
        np.savez(fh, hashes=hashes, vectors=vectors)
    Manifest(
        kind="text-vectors",
        name=embedder.name,
        fingerprint=Fingerprint().array(hashes).hexdigest(),
        stats={"texts": len(hashes), "dim": embedder.dim},
    ).write(folder)


__all__ = ["TextVectors", "text_vectors"]
