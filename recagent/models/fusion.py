"""Fusion: one ranking from several trained models, by reciprocal rank or by scores.

- `rrf`: each member ranks every item; an item's score is the sum over members of
  1 / (k + rank) (Cormack et al., k = 60).
- `score`: each member's scores are standardised per history (mean 0, unit variance over the
  items it ranks) and summed.

`fit_fusion` picks the method and the members (every subset of two or more trained models) on
the valid split; `fusion.json` in the dataset's model folder records the choice. It becomes
the default scorer only if it beats every single model on valid (`leaderboard.best_model`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.metrics import summarize, target_ranks
from recagent.models.base import ExplainsScores, ReadsSequence, Scorer, Times
from recagent.models.leaderboard import FUSION
from recagent.workspace import Workspace, atomic_write_text

Method = Literal["rrf", "score"]


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=2)
    method: Method = "rrf"
    k: int = Field(60, ge=1, description="RRF's rank offset.")


def rank_matrix(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every column per row (best = 1; column 0, padding, last)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[:, 0] = -np.inf
    s[np.isnan(s)] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, s.shape[1] + 1)[None, :], axis=1)
    return ranks


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite entries; the rest get the row's lowest minus one."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[:, 0] = np.nan
    finite = np.isfinite(s)
    masked = np.where(finite, s, np.nan)
    mean = np.nanmean(masked, axis=1, keepdims=True)
    std = np.nanstd(masked, axis=1, keepdims=True)
    z = (masked - mean) / np.where(std > 0, std, 1.0)
    low = np.nanmin(z, axis=1, keepdims=True) - 1.0
    return np.where(finite, z, low)


def fuse(rows: Sequence[np.ndarray], method: Method, k: int = 60) -> np.ndarray:
    """Fused (B, N + 1) scores of members' score matrices; column 0 = -inf."""
    if method == "rrf":
        out = sum(1.0 / (k + rank_matrix(r)) for r in rows)
    else:
        out = sum(standardise(r) for r in rows)
    fused = np.asarray(out, dtype=np.float32)
    fused[:, 0] = -np.inf
    return fused


class FusionScorer(Scorer):
    """Several trained scorers as one (`ReadsSequence` and `ExplainsScores` through its
    members)."""

    name = "fusion"

    def __init__(self, members: Sequence[Scorer], config: FusionConfig) -> None:
        super().__init__(members[0].item_ids)
        if any(m.item_ids != self.item_ids for m in members):
            raise ValueError("fusion members must share one item catalog")
        self.members = list(members)
        self.config = config

    @property
    def max_len(self) -> int:
        return max((m.max_len for m in self.members if isinstance(m, ReadsSequence)), default=0)

    def score_batch(self, histories: Sequence[np.ndarray], times: Times = None) -> np.ndarray:
        rows = [m.score_batch(histories, times) for m in self.members]
        return fuse(rows, self.config.method, self.config.k)

    def attended(
        self, history: Sequence[str], top: int = 3, candidate: str | None = None
    ) -> list[tuple[str, float]]:
        for member in self.members:
            if isinstance(member, ExplainsScores):
                return member.attended(history, top, candidate)
        return []


class FusionTrial(BaseModel):
    members: list[str]
    method: Method
    valid: dict[str, float]


def fit_fusion(
    scorers: dict[str, Scorer], dataset: Dataset, cases: Sequence[object] | None = None
) -> list[FusionTrial]:
    """Every method x subset (2+ members) of `scorers` on the valid split, best first by
    NDCG@10. Each member scores the valid users once."""
    valid = list(cases) if cases is not None else dataset.split.cases("valid")
    histories = [c.history for c in valid]  # type: ignore[attr-defined]
    targets = [c.target for c in valid]  # type: ignore[attr-defined]
    times = [c.times for c in valid]  # type: ignore[attr-defined]
    stamps = None if any(t is None for t in times) else times
    rows = {name: s.score_batch(histories, stamps) for name, s in scorers.items()}
    trials = []
    for size in range(2, len(rows) + 1):
        for members in itertools.combinations(rows, size):
            for method in ("rrf", "score"):
                fused = fuse([rows[m] for m in members], method)  # type: ignore[arg-type]
                metrics = summarize(target_ranks(fused, targets, histories))
                trials.append(FusionTrial(members=list(members), method=method, valid=metrics))  # type: ignore[arg-type]
    return sorted(trials, key=lambda t: -t.valid["NDCG@10"])


def save_fusion(workspace: Workspace, dataset: str, config: FusionConfig) -> None:
    atomic_write_text(
        workspace.models_dir(dataset) / FUSION, config.model_dump_json(indent=2) + "\n"
    )


def read_fusion(workspace: Workspace, dataset: str) -> FusionConfig:
    path = workspace.models_dir(dataset) / FUSION
    if not path.is_file():
        raise ArtifactError(
            f"no fusion for dataset {dataset!r}; fit one on valid with `recagent train fusion "
            f"--dataset {dataset}`"
        )
    try:
        return FusionConfig.model_validate(json.loads(path.read_text()))
    except ValueError as exc:
        raise ArtifactError(f"{path} is not a fusion config ({exc}); fit it again") from exc


__all__ = [
    "FusionConfig",
    "FusionScorer",
    "FusionTrial",
    "fit_fusion",
    "fuse",
    "rank_matrix",
    "read_fusion",
    "save_fusion",
    "standardise",
]
