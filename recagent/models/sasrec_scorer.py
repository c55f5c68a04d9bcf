"""`SASRecScorer`: a trained SASRec behind the `Scorer` contract, plus device selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recagent.errors import ConfigError
from recagent.models.base import IdScorer
from recagent.models.sasrec import SASRec, left_pad

SCORE_CHUNK = 128  # histories per forward pass: small enough to stay in the CPU caches


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


class SASRecScorer(IdScorer):
    """Scores the next item of any history (item ids in time order) with a trained SASRec.

    Only the last `max_len` items of a history are read. An empty history has no sequence to
    condition on: its scores are the training popularity, log(1 + count), so a new user still
    gets a sensible, finite ranking.
    """

    name = "sasrec"

    def __init__(self, model: SASRec, item_ids: Sequence[str], item_counts: np.ndarray) -> None:
        super().__init__(item_ids)
        if model.n_items != len(self.item_ids):
            raise ValueError(f"model has {model.n_items} items, id map has {len(self.item_ids)}")
        self.model = model.eval()
        self.prior = np.log1p(np.asarray(item_counts, dtype=np.float32))
        self.prior[0] = -np.inf

    @property
    def device(self) -> torch.device:
        return self.model.item_emb.weight.device

    @property
    def max_len(self) -> int:
        return self.model.config.max_len

    @torch.inference_mode()
    def score_batch(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        lengths = np.array([min(len(h), self.max_len) for h in histories])
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(order), SCORE_CHUNK):
            rows = order[start : start + SCORE_CHUNK]
            rows = rows[lengths[rows] > 0]
            if len(rows) == 0:
                continue
            seq = left_pad([histories[i] for i in rows], self.max_len).to(self.device)
            hidden = self.model.hidden(seq, last_only=True)[0]  # (B, D): after the last item
            out[rows] = self.model.logits(hidden).float().cpu().numpy()
        out[lengths == 0] = self.prior
        return out

    @torch.inference_mode()
    def attended(self, history: Sequence[str], top: int = 3) -> list[tuple[str, float]]:
        """The history items the last block attends to most when predicting the next item,
        with their attention weight (averaged over heads), strongest first."""
        idx = self.to_idx(history, "history")[-self.max_len :]
        if len(idx) == 0:
            return []
        seq = left_pad([idx], self.max_len).to(self.device)
        weights = self.model.hidden(seq, need_weights=True, last_only=True)[1][-1]
        weights = weights[0, :, -1].mean(0)  # (L,): the last position, averaged over heads
        per_item: dict[int, float] = {}
        for item, w in zip(idx.tolist(), weights[-len(idx) :].tolist(), strict=True):
            per_item[item] = per_item.get(item, 0.0) + w
        best = sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [(self.item_ids[i - 1], w) for i, w in best]


__all__ = ["SASRecScorer", "resolve_device"]
