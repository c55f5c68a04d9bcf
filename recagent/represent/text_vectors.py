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


def text_key(dataset: Dataset, config: IndexConfig, embedder: Embedder) -> str:
    """What `text_vectors` of `dataset` would be made from (catalog, embedder, template), as a
    fingerprint: known without embedding or reading anything."""
    return (
        Fingerprint()
        .text(catalog_fingerprint(dataset.catalog))
        .text(embedder.name)
        .text(str(embedder.dim))
        .text(load_template(config.template).hash)
        .hexdigest()
    )


def text_vectors(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
) -> TextVectors:
    """Every item's vector (through the per-text cache of `embed_cached`)."""
    embedder = embedder or make_embedder(config)
    template = load_template(config.template)
    source = Fingerprint().text(embedder.name).text(str(embedder.dim)).text(template.hash)
    items = list(dataset.catalog)
    # rows follow the catalog's item_idx order (item_idx i = the i-th item)
    order = [dataset.catalog.idx(it.item_id) for it in items]
    if order != list(range(1, len(items) + 1)):
        raise ArtifactError(f"{dataset.name}: catalog order and item_idx disagree")
    matrix = np.zeros((len(items) + 1, embedder.dim), dtype=np.float32)
    matrix[1:] = embed_cached(workspace, embedder, template.render_all(items), reporter)
    return TextVectors(
        matrix,
        embedder.name,
        text_key(dataset, config, embedder),
        source.hexdigest(),
        (config.embedder, config.template),
    )


def embed_cached(
    workspace: Workspace,
    embedder: Embedder,
    texts: list[str],
    reporter: Reporter | None = None,
) -> np.ndarray:
    """Unit vectors (len(texts), dim) of `texts`, embedding only the ones this embedder has
    not embedded before.

    The cache is per text, not per catalog: a vector is stored under the hash of the exact
    text it came from, so a changed catalog or template re-embeds only the items whose text
    changed, and the item encoder's index re-uses what was embedded for training (what makes
    a slow or paid embedder, such as an LLM endpoint, affordable)."""
    hashes = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]
    folder = (
        workspace.cache_dir / "text-vectors" / Fingerprint().text(embedder.name).hexdigest()[:16]
    )
    cached = _read_cache(folder, embedder)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    missing = []
    for row, h in enumerate(hashes):
        if h in cached:
            out[row] = cached[h]
        else:
            missing.append(row)
    if missing:
        report = reporter or SilentReporter()
        with report.stage(
            f"embedding {len(missing):,} texts ({embedder.name})", len(missing)
        ) as adv:
            for start in range(0, len(missing), BATCH):
                rows = missing[start : start + BATCH]
                out[rows] = checked_embed(embedder, [texts[r] for r in rows], embedder.dim)
                adv(len(rows))
        cached.update({hashes[r]: out[r] for r in missing})
        _write_cache(folder, embedder, cached)
    return out


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


__all__ = ["TextVectors", "embed_cached", "text_key", "text_vectors"]
