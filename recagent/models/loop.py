"""The pieces of a training run every model shares: the validation sample, one epoch over
the (sharded) batches, the model's loss as `forward` (so DistributedDataParallel sees it), and
the best epoch so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recagent.data.dataset import Dataset
from recagent.data.split import EvalCase
from recagent.errors import ConfigError
from recagent.models import distributed
from recagent.models.base import Scorer
from recagent.models.checkpoint import load_scorer
from recagent.workspace import Workspace

VALID_SAMPLE_SEED = 0  # the same users validate every run, whatever its training seed


def valid_cases(dataset: Dataset, max_users: int | None) -> list[EvalCase]:
    """The valid cases, or a fixed seeded sample of `max_users` of them when there are more."""
    cases = dataset.split.cases("valid")
    if max_users is None or len(cases) <= max_users:
        return cases
    rng = np.random.default_rng(VALID_SAMPLE_SEED)
    keep = np.sort(rng.choice(len(cases), size=max_users, replace=False))
    return [cases[i] for i in keep]


class LossModule(torch.nn.Module):
    """The model's batch loss as `forward`, so DistributedDataParallel sees the call."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, *batch: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        loss: torch.Tensor = self.model.batch_loss(*batch, generator=generator)
        return loss


def train_epoch(
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Any,
    batch_size: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    device: torch.device,
    group: distributed.Group,
    deadline: float = float("inf"),
) -> tuple[float, bool]:
    """One pass over the training data, or fewer batches if `deadline` (a
    `time.perf_counter()` value) passes first: (mean batch loss, whether it was complete).
    Every process walks the same global batches and trains on its shard of each; the loss
    is the mean over the processes."""
    loss_module.train()
    losses: list[float] = []
    for batch in data.epoch(rng, batch_size):
        if losses and deadline < float("inf"):
            late = group.broadcast([float(time.perf_counter() >= deadline)])[0]
            if late:
                return group.mean(float(np.mean(losses))), False
        if len(batch) < group.world:
            continue  # a last scrap too small to give every process a row
        tensors = [t.to(device) if t is not None else None for t in data.batch(group.shard(batch))]
        loss = loss_module(*tensors, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return group.mean(float(np.mean(losses)) if losses else float("nan")), True


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class Best:
    """The best epoch so far and whether its checkpoint is on disk."""

    epoch: int = 0
    value: float = -1.0
    valid: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    at: float = 0.0
    saved: bool = True


def resolver(workspace: Workspace | None, dataset: Dataset, device: str) -> Callable[[str], Scorer]:
    cache: dict[str, Scorer] = {}

    def resolve(name: str) -> Scorer:
        if workspace is None:
            raise ConfigError(f"training this model needs the trained {name}: pass a workspace")
        if name not in cache:
            cache[name] = load_scorer(workspace, dataset, name, device)
        return cache[name]

    return resolve


def validate_keys(valid: dict[str, float], metric: str) -> set[str]:
    """The metric names every process agrees on (rank 0's, or the standard set)."""
    from recagent.metrics import DEFAULT_KS

    names = {f"{m}@{k}" for m in ("HR", "NDCG") for k in DEFAULT_KS} | {"MRR", metric}
    return names | set(valid)


class NoLock:
    """What processes other than rank 0 hold instead of the checkpoint's `KeepBetter`."""

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


__all__ = [
    "VALID_SAMPLE_SEED",
    "Best",
    "LossModule",
    "NoLock",
    "cpu_state",
    "resolver",
    "train_epoch",
    "valid_cases",
    "validate_keys",
]
