"""Item pairs from interactions: which items the same people consume together.

For every user, two items count as a pair when they are within `window` positions of each
other in the user's sequence (and, when ratings exist and `min_rating` is set, both are rated
at least that). Each user adds 1/N_u to each of their pairs (N_u = the user's item count), so
heavy users do not dominate. A pair's score is then damped by the partner's total
(`score / total_j ** damping`: a blockbuster co-occurs with everything), and each item keeps
its `partners` best partners. "People who liked A also liked B", computed once per dataset
(from the training split only for evaluation, from everything for chat), deterministic, and
cached in the workspace with a manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset
from recagent.data.pairs_config import PairsConfig
from recagent.errors import ArtifactError
from recagent.manifest import Fingerprint, Manifest
from recagent.workspace import Workspace, atomic_path

PAIRS_FILE = "pairs.npz"
MAX_BECAUSE = 3


class ItemPairs:
    """Top partners per item_idx as a sparse row-per-item matrix (row 0 = padding)."""

    def __init__(self, dataset: Dataset, matrix: sp.csr_matrix) -> None:
        self.dataset = dataset
        self.matrix = matrix

    @classmethod
    def build(cls, dataset: Dataset, config: PairsConfig, train_only: bool) -> ItemPairs:
        n = dataset.n_items + 1
        inter = dataset.interactions
        split = dataset.split
        rows, cols, vals = [], [], []
        for u in range(1, inter.n_users + 1):
            seq = split.train_sequence(u) if train_only else inter.sequence(u)
            if config.min_rating is not None and inter.has_ratings:
                ratings = inter.ratings_of(u)[: len(seq)]
                seq = seq[ratings >= config.min_rating]
            if len(seq) < 2:
                continue
            weight = 1.0 / len(seq)
            for d in range(1, min(config.window, len(seq) - 1) + 1):
                rows += [seq[:-d], seq[d:]]
                cols += [seq[d:], seq[:-d]]
                vals.append(np.full(2 * (len(seq) - d), weight, dtype=np.float64))
        if not rows:
            return cls(dataset, sp.csr_matrix((n, n), dtype=np.float32))
        counts = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        counts.setdiag(0)
        counts.eliminate_zeros()
        if config.drop_quantile is not None and counts.nnz:
            cap = np.quantile(counts.data, config.drop_quantile)
            counts.data[counts.data > cap] = 0
            counts.eliminate_zeros()
        totals = np.asarray(counts.sum(axis=0)).ravel()
        damp = np.power(np.maximum(totals, 1e-12), -config.damping)
        scored = sp.csr_matrix(counts.multiply(damp[None, :]))
        return cls(dataset, _top_per_row(scored, config.partners))

    @classmethod
    def load_or_build(
        cls,
        workspace: Workspace,
        dataset: Dataset,
        config: PairsConfig,
        train_only: bool,
        name: str = "pairs",
    ) -> ItemPairs:
        """The cached pairs when their manifest matches (data, options), else built and
        cached (atomically). `name`: the cache folder, one per use (the agent's pairs, the
        item encoder's), so two configurations never evict each other."""
        folder = workspace.models_dir(dataset.name) / (f"{name}-train" if train_only else name)
        key = Fingerprint().json(config.model_dump()).text(str(train_only)).hexdigest()
        try:
            manifest = Manifest.read(folder)
            if manifest.inputs.get("data") == dataset.fingerprint and manifest.fingerprint == key:
                with np.load(folder / PAIRS_FILE) as z:
                    matrix = sp.csr_matrix(
                        (z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"])
                    )
                return cls(dataset, matrix)
        except (ArtifactError, OSError, KeyError, ValueError):
            pass
        pairs = cls.build(dataset, config, train_only)
        pairs.save(folder, key, config, train_only)
        return pairs

    def save(self, folder: Path, key: str, config: PairsConfig, train_only: bool) -> None:
        m = self.matrix
        with atomic_path(folder / PAIRS_FILE) as tmp, tmp.open("wb") as fh:
            np.savez(fh, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape))
        Manifest(
            kind="item-pairs",
            name=self.dataset.name,
            fingerprint=key,
            config={**config.model_dump(), "train_only": train_only},
            inputs={"data": self.dataset.fingerprint},
            stats={"pairs": int(m.nnz)},
        ).write(folder)

    def partners(self, item_id: str) -> list[tuple[str, float]]:
        """One item's partners, best first."""
        row = self.matrix[self.dataset.catalog.idx(item_id)]
        order = np.argsort(-row.data, kind="stable")
        ids = self.dataset.catalog.ids_at(row.indices[order])
        return list(zip(ids, row.data[order].tolist(), strict=True))

    def related(
        self,
        seeds: Sequence[str],
        k: int,
        constraints: Constraints | None = None,
        weights: Sequence[float] | None = None,
    ) -> list[tuple[str, float, list[str]]]:
        """Items people consume together with `seeds` (never the seeds): (item_id, score,
        the seeds behind it, strongest first), best first. Score = the weighted sum of the
        seeds' pair scores, each seed's row scaled to a maximum of 1."""
        catalog = self.dataset.catalog
        idx = [catalog.idx(i) for i in dict.fromkeys(seeds)]
        if not idx or k <= 0:
            return []
        w = np.ones(len(idx)) if weights is None else np.asarray(weights, dtype=np.float64)
        block = self.matrix[idx].toarray()  # (S, n_items + 1)
        block /= np.maximum(block.max(axis=1, keepdims=True), 1e-12)
        block *= w[:, None]
        total = block.sum(axis=0)
        total[0] = 0.0
        total[idx] = 0.0
        candidates = np.flatnonzero(total > 0)
        if constraints is not None and len(candidates):
            c = constraints.resolve(catalog)
            candidates = np.array(
                [j for j in candidates if c.admits(catalog.at(int(j))) is None], dtype=np.int64
            )
        if not len(candidates):
            return []
        top = candidates[np.lexsort((candidates, -total[candidates]))][:k]
        out = []
        for j in top:
            contrib = block[:, j]
            order = np.argsort(-contrib, kind="stable")
            because = [catalog.id_at(idx[s]) for s in order[:MAX_BECAUSE] if contrib[s] > 0]
            out.append((catalog.id_at(int(j)), float(total[j]), because))
        return out


def _top_per_row(m: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Only the `keep` largest entries of each row (ties by column)."""
    indptr, indices, data = [0], [], []
    for r in range(m.shape[0]):
        start, end = m.indptr[r], m.indptr[r + 1]
        cols, vals = m.indices[start:end], m.data[start:end]
        if len(vals) > keep:
            order = np.lexsort((cols, -vals))[:keep]
            cols, vals = cols[order], vals[order]
        indices.append(cols)
        data.append(vals)
        indptr.append(indptr[-1] + len(cols))
    return sp.csr_matrix(
        (np.concatenate(data).astype(np.float32), np.concatenate(indices), np.array(indptr)),
        shape=m.shape,
    )


__all__ = ["ItemPairs", "PairsConfig"]
