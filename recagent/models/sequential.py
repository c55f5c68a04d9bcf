"""`SequenceScorer`: any next-item sequence model (SASRec, HSTU, BERT4Rec) behind the `Scorer`
contract.

A `NextItemModel` reads left-padded item_idx histories (B, L) (and, if it uses time, their
timestamps followed by the request time, (B, L + 1)) and returns every item's score for the
next position. The scorer batches histories of similar length, reads only the last
`history_len` items of each, and gives an empty history the training popularity
(log(1 + count)), so a new user still gets a sensible, finite ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from recagent.models.base import Scorer, Times
from recagent.models.sasrec import left_pad

SCORE_CHUNK = 128  # histories per forward pass: small enough to stay in the CPU caches


class NextItemModel(Protocol):
    n_items: int

    @property
    def history_len(self) -> int:
        """The most history items one prediction reads."""
        ...

    def score_last(self, seq: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
        """(B, N + 1) scores of the item after each left-padded history; column 0 = -inf."""
        ...

    def attention_last(self, seq: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
        """(B, L) how much the prediction attends to each slot of `seq` (0 on padding)."""
        ...

    def parameters(self) -> object: ...


def pad_times(times: Sequence[np.ndarray | None], history_len: int) -> torch.Tensor | None:
    """Left-padded (B, L + 1) timestamps (history + request time), or None unless every
    history has them."""
    if not times or any(t is None for t in times):
        return None
    return left_pad([np.asarray(t)[-(history_len + 1) :] for t in times], history_len + 1)


class SequenceScorer(Scorer):
    """A trained next-item model as a `Scorer` (`ReadsSequence`, `ExplainsScores`)."""

    def __init__(
        self,
        model: NextItemModel,
        item_ids: Sequence[str],
        item_counts: np.ndarray,
        name: str = "sequence",
    ) -> None:
        super().__init__(item_ids)
        if model.n_items != len(self.item_ids):
            raise ValueError(f"model has {model.n_items} items, id map has {len(self.item_ids)}")
        self.name = name
        self.model = model
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.prior = np.log1p(np.asarray(item_counts, dtype=np.float32))
        self.prior[0] = -np.inf

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.parameters())).device  # type: ignore[call-overload]

    @property
    def max_len(self) -> int:
        return self.model.history_len

    def _inputs(
        self, histories: Sequence[np.ndarray], times: Times
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        seq = left_pad(histories, self.max_len)
        stamps = None if times is None else pad_times(times, self.max_len)
        if stamps is not None:
            stamps = stamps[:, -(seq.shape[1] + 1) :]
        return seq.to(self.device), None if stamps is None else stamps.to(self.device)

    @torch.inference_mode()
    def score_batch(self, histories: Sequence[np.ndarray], times: Times = None) -> np.ndarray:
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        lengths = np.array([min(len(h), self.max_len) for h in histories])
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(order), SCORE_CHUNK):
            rows = order[start : start + SCORE_CHUNK]
            rows = rows[lengths[rows] > 0]
            if len(rows) == 0:
                continue
            chunk_times = None if times is None else [times[i] for i in rows]
            seq, stamps = self._inputs([histories[i] for i in rows], chunk_times)
            out[rows] = self.model.score_last(seq, stamps).float().cpu().numpy()
        out[lengths == 0] = self.prior
        return out

    @torch.inference_mode()
    def attended(
        self, history: Sequence[str], top: int = 3, candidate: str | None = None
    ) -> list[tuple[str, float]]:
        """The history items the prediction attends to most (last block, averaged over
        heads), with their weight, strongest first (`candidate` is not needed: one state
        scores every candidate)."""
        idx = self.to_idx(history, "history")[-self.max_len :]
        if len(idx) == 0:
            return []
        seq, _ = self._inputs([idx], None)
        weights = self.model.attention_last(seq, None)[0, -len(idx) :]
        per_item: dict[int, float] = {}
        for item, w in zip(idx.tolist(), weights.tolist(), strict=True):
            per_item[item] = per_item.get(item, 0.0) + w
        best = sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [(self.item_ids[i - 1], w) for i, w in best]


def sequence_scorer(name: str) -> Callable[..., SequenceScorer]:
    """A `ModelSpec.scorer` that wraps the trained network as a `SequenceScorer` named
    `name` (HSTU, BERT4Rec, LRURec: models with nothing to add to the shared scorer)."""

    def scorer(
        model: NextItemModel, item_ids: Sequence[str], counts: np.ndarray, *_: Any
    ) -> SequenceScorer:
        return SequenceScorer(model, item_ids, counts, name=name)

    return scorer


__all__ = ["SCORE_CHUNK", "NextItemModel", "SequenceScorer", "pad_times", "sequence_scorer"]
