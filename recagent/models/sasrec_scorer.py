"""`SASRecScorer`: a trained SASRec behind the `Scorer` contract; SASRec's registry entry;
device selection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recagent.errors import ConfigError
from recagent.models.registry import ModelSpec, Resolve
from recagent.models.sasrec import SASRec
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from recagent.models.sequential import SCORE_CHUNK, SequenceScorer
from recagent.models.windows import WindowData, window_data


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N`, `mps`, or `auto` (the first of cuda, mps, cpu available)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda, cuda:N, mps or auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but this torch build sees no CUDA GPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r} (use cpu, cuda, cuda:N, mps or auto)")
    return device


class SASRecScorer(SequenceScorer):
    """Scores the next item of any history (item ids in time order) with a trained SASRec.

    Only the last `max_len` items of a history are read. An empty history has no sequence to
    condition on: its scores are the training popularity, log(1 + count), so a new user still
    gets a sensible, finite ranking.
    """

    def __init__(self, model: SASRec, item_ids: Sequence[str], item_counts: np.ndarray) -> None:
        super().__init__(model, item_ids, item_counts, name="sasrec")
        self.model: SASRec = model


def _scorer(
    model: SASRec, item_ids: Sequence[str], counts: np.ndarray, config: Any, resolve: Resolve
) -> SASRecScorer:
    return SASRecScorer(model, item_ids, counts)


def _data(
    dataset: Any, config: SASRecConfig, options: SASRecTrainConfig, resolve: Resolve
) -> WindowData:
    return window_data(dataset, config.max_len, options.windows, options.window_step, False)


SPEC = ModelSpec(
    name="sasrec",
    title="SASRec",
    config_type=SASRecConfig,
    train_type=SASRecTrainConfig,
    build=SASRec,
    scorer=_scorer,
    data=_data,
    presets={
        # LRURec's recipe on SASRec: full cross-entropy, a per-item output bias, dropout 0.2
        "lrurec-recipe": {"loss": "full-ce", "output_bias": True},
    },
)

__all__ = ["SCORE_CHUNK", "SPEC", "SASRecScorer", "resolve_device"]
