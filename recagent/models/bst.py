"""BST, the Behavior Sequence Transformer (Chen et al. 2019, arXiv 1905.06874), as a reranker:
the probability that a user clicks a candidate, given their recent behaviours.

Shapes: B = batch, S = `history` (behaviours read), D = `dim` + `gap_dim` (a token), K =
candidates per history.

- Tokens: the last S behaviours, left-padded, then the candidate (the "target item")
  appended. Each token is the concatenation of its item embedding and a "position" embedding
  of its time gap t(target) - t(v_i) in HSTU's log buckets (the target's gap is 0); without
  timestamps, its distance from the target instead. Training drops the times of a share of
  samples (`time_dropout`), so the model also scores histories without them (chat).
- One post-LN transformer block (8 heads, LeakyReLU feed-forward), over every token
  (padded keys masked).
- The block's outputs, flattened, go through an MLP (LeakyReLU) to one click logit. No
  "other features" (user profile, context): the datasets here have none in common.
- Trained with BCE on the clicked item and sampled unclicked ones, hard negatives included
  (`recagent.models.bst_data`).

It scores the candidates it is given (`score_candidates_batch`: the agent's pool). Over the
whole catalog it reranks the retriever's `pool` best items (history excluded) and leaves the
rest in the retriever's order below them, so its full-ranking numbers read "SASRec top-100
reranked by BST": a target outside the pool cannot reach the top 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recagent.errors import ArtifactError
from recagent.models.base import Scorer, Times
from recagent.models.bert4rec import key_padding_mask
from recagent.models.bst_data import BSTData, gap_ids, hard_pools, position_gaps, samples
from recagent.models.hstu import TIME_BUCKETS, time_buckets
from recagent.models.padding import left_pad
from recagent.models.recipe import trunc_normal_init
from recagent.models.registry import ModelSpec, Resolve
from recagent.models.sasrec import CausalSelfAttention
from recagent.models.train_config import TrainConfig

PAIR_CHUNK = 4096  # (history, candidate) pairs per forward pass


class BSTConfig(BaseModel):
    """The architecture, reranking and sampling settings of a BST model (in its checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=4, le=1024, description="Item embedding size.")
    gap_dim: int = Field(16, ge=1, le=256, description="Time-gap embedding size.")
    heads: int = Field(8, ge=1, le=16, description="Must divide dim + gap_dim.")
    layers: int = Field(1, ge=1, le=6)
    ff_dim: int = Field(256, ge=4, le=8192)
    mlp: list[int] = Field(default_factory=lambda: [256, 128, 64], max_length=6)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    history: int = Field(20, ge=1, le=200, description="Behaviours read (S).")
    retriever: str = Field("sasrec", description="The model whose top items it reranks.")
    pool: int = Field(100, ge=1, le=10_000, description="Items reranked at full ranking.")
    negatives: int = Field(4, ge=1, le=100, description="Unclicked samples per click.")
    hard_share: float = Field(0.5, ge=0.0, le=1.0, description="Share of them that are hard.")
    hard_pool: int = Field(100, ge=1, le=10_000, description="Hard = the retriever's top this.")
    positives_per_user: int | None = Field(
        50, ge=1, description="Train on each user's most recent clicks only (None: all)."
    )
    time_dropout: float = Field(0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _valid(self) -> BSTConfig:
        if (self.dim + self.gap_dim) % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim + gap_dim")
        if self.retriever == "bst":
            raise ValueError("BST cannot rerank its own pool: choose another retriever")
        return self


class BSTTrainConfig(TrainConfig):
    batch_size: int = Field(256, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0, le=1.0)
    patience: int = Field(4, ge=1)
    lr_patience: int | None = Field(2, ge=1)
    epochs: int = Field(40, ge=1)


class Block(nn.Module):
    """Post-LN transformer block: LN(S + Drop(MH(S))), then LN(S' + Drop(FFN_LeakyReLU))."""

    def __init__(self, width: int, config: BSTConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(width, config.heads)  # with a key-padding mask only
        self.norm1 = nn.LayerNorm(width)
        self.ff = nn.Sequential(
            nn.Linear(width, config.ff_dim), nn.LeakyReLU(), nn.Linear(config.ff_dim, width)
        )
        self.norm2 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, weights = self.attn(x, mask, need_weights)
        x = self.norm1(x + self.dropout(y))
        return self.norm2(x + self.dropout(self.ff(x))), weights


class BST(nn.Module):
    """The network: click logit of (history, gaps, candidate)."""

    def __init__(self, n_items: int, config: BSTConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.config = config
        width = config.dim + config.gap_dim
        self.item_emb = nn.Embedding(n_items + 1, config.dim, padding_idx=0)
        self.gap_emb = nn.Embedding(TIME_BUCKETS + 1 + config.history + 1, config.gap_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(width, config) for _ in range(config.layers))
        layers: list[nn.Module] = []
        size = width * (config.history + 1)
        for hidden in config.mlp:
            layers += [nn.Linear(size, hidden), nn.LeakyReLU(), nn.Dropout(config.dropout)]
            size = hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(size, 1))
        self.apply(trunc_normal_init)

    def forward(
        self,
        history: torch.Tensor,
        gaps: torch.Tensor,
        candidate: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Click logits (B,) of `candidate` (B,) after left-padded `history` (B, S) with its
        gap ids (B, S); with `need_weights`, the last block's attention (B, H, S+1, S+1)."""
        tokens = torch.cat([history, candidate[:, None]], dim=1)  # (B, S + 1)
        gap = F.pad(gaps, (0, 1), value=0)  # the target's own gap: 0
        real = tokens > 0
        x = torch.cat([self.item_emb(tokens), self.gap_emb(gap)], dim=-1)  # (B, S + 1, D)
        x = self.dropout(x) * real[..., None]
        mask = key_padding_mask(real)
        weights = None
        for block in self.blocks:
            x, weights = block(x, mask, need_weights)
        x = x * real[..., None]
        return self.mlp(x.flatten(1)).squeeze(-1), weights

    def batch_loss(
        self,
        history: torch.Tensor,
        gaps: torch.Tensor,
        candidate: torch.Tensor,
        label: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """BCE of click logits against `label` (B,); a share `time_dropout` of the rows see
        distance gaps instead of time gaps."""
        if self.training and self.config.time_dropout > 0:
            drop = torch.rand(len(history), device=history.device, generator=generator)
            gaps = torch.where(
                (drop < self.config.time_dropout)[:, None], position_gaps(history), gaps
            )
        logits, _ = self(history, gaps, candidate)
        return F.binary_cross_entropy_with_logits(logits, label)


class BSTScorer(Scorer):
    """A trained BST reranking `retriever`'s pool (`Reranks`, `ExplainsScores`)."""

    name = "bst"

    def __init__(self, model: BST, item_ids: Sequence[str], retriever: Scorer, pool: int) -> None:
        super().__init__(item_ids)
        if model.n_items != len(self.item_ids):
            raise ValueError(f"model has {model.n_items} items, id map has {len(self.item_ids)}")
        self.model = model.eval()
        self._retriever = retriever
        self.pool = pool

    @property
    def retriever(self) -> Scorer:
        return self._retriever

    @property
    def device(self) -> torch.device:
        return self.model.item_emb.weight.device

    def _tokens(
        self, histories: Sequence[np.ndarray], times: Times
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) histories and their gap ids (time gaps to the request time if known)."""
        s = self.model.config.history
        rows = [np.asarray(h, dtype=np.int64)[-s:] for h in histories]
        hist = torch.zeros((len(rows), s), dtype=torch.int64)
        for i, r in enumerate(rows):
            if len(r):
                hist[i, s - len(r) :] = torch.as_tensor(r)
        if times is None or any(t is None for t in times):
            return hist, position_gaps(hist)
        stamps = torch.zeros((len(rows), s), dtype=torch.int64)
        request = torch.zeros(len(rows), dtype=torch.int64)
        for i, (r, t) in enumerate(zip(rows, times, strict=True)):
            t = np.asarray(t, dtype=np.int64)
            request[i] = int(t[-1])
            if len(r):
                stamps[i, s - len(r) :] = torch.as_tensor(t[:-1][-len(r) :])
        return hist, time_buckets(request[:, None] - stamps).masked_fill(hist == 0, 0)

    @torch.inference_mode()
    def score_candidates_batch(
        self,
        histories: Sequence[np.ndarray],
        candidates: Sequence[np.ndarray],
        times: Times = None,
    ) -> list[np.ndarray]:
        hist, gaps = self._tokens(histories, times)
        counts = [len(c) for c in candidates]
        row = torch.repeat_interleave(torch.arange(len(histories)), torch.as_tensor(counts))
        cand = torch.as_tensor(
            np.concatenate(
                [np.asarray(c, dtype=np.int64) for c in candidates] or [np.zeros(0, np.int64)]
            )
        )
        scores = torch.empty(len(cand))
        for start in range(0, len(cand), PAIR_CHUNK):
            part = slice(start, start + PAIR_CHUNK)
            r = row[part]
            logits, _ = self.model(
                hist[r].to(self.device), gaps[r].to(self.device), cand[part].to(self.device)
            )
            scores[part] = logits.float().cpu()
        return [s.numpy() for s in scores.split(counts)]

    def score_batch(self, histories: Sequence[np.ndarray], times: Times = None) -> np.ndarray:
        """The retriever's scores, with its `pool` best unseen items rescored by BST above
        all the others (which keep the retriever's order)."""
        base = self.retriever.score_batch(histories, times).astype(np.float32)
        ranked = base.astype(np.float64)
        ranked[:, 0] = -np.inf
        for r, h in enumerate(histories):
            ranked[r, np.asarray(h, dtype=np.int64)] = -np.inf
        pool = min(self.pool, self.n_items)
        pools = np.argpartition(-ranked, pool - 1, axis=1)[:, :pool]
        rescored = self.score_candidates_batch(histories, list(pools), times)
        out = np.empty_like(base)
        for r, (items, scores) in enumerate(zip(pools, rescored, strict=True)):
            finite = base[r][np.isfinite(base[r])]
            top = finite.max() if len(finite) else 0.0
            out[r] = base[r] - top + scores.min() - 1.0  # everything else below the pool
            out[r, items] = scores
        out[:, 0] = -np.inf
        return out

    @torch.inference_mode()
    def attended(
        self, history: Sequence[str], top: int = 3, candidate: str | None = None
    ) -> list[tuple[str, float]]:
        """The history items the candidate (default: the retriever's best unseen item)
        attends to most in the last block, averaged over heads."""
        idx = self.to_idx(history, "history")[-self.model.config.history :]
        if len(idx) == 0:
            return []
        if candidate is None:
            best = self.retriever.recommend(list(history), 1, exclude=history)
            if not best:
                return []
            candidate = best[0][0]
        hist, gaps = self._tokens([idx], None)
        cand = torch.as_tensor(self.to_idx([candidate], "candidate"))
        _, weights = self.model(
            hist.to(self.device), gaps.to(self.device), cand.to(self.device), need_weights=True
        )
        assert weights is not None
        w = weights[0, :, -1, -1 - len(idx) : -1].mean(0)  # the target's row, history keys
        per_item: dict[int, float] = {}
        for item, value in zip(idx.tolist(), w.tolist(), strict=True):
            per_item[item] = per_item.get(item, 0.0) + value
        ranked = sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [(self.item_ids[i - 1], value) for i, value in ranked]


def _scorer(
    model: BST, item_ids: Sequence[str], counts: np.ndarray, config: BSTConfig, resolve: Resolve
) -> BSTScorer:
    return BSTScorer(model, item_ids, resolve(config.retriever), config.pool)


def _data(dataset: Any, config: BSTConfig, options: TrainConfig, resolve: Resolve) -> BSTData:
    prefixes, targets, times, request = samples(dataset, config.history, config.positives_per_user)
    hist = left_pad([p[-config.history :] for p in prefixes], config.history)
    hist = F.pad(hist, (config.history - hist.shape[1], 0))  # exactly S columns
    gaps = gap_ids(hist, times, request)
    hard = np.zeros((len(targets), 0), dtype=np.int64)
    if config.hard_share > 0 and len(targets):
        try:
            retriever = resolve(config.retriever)
        except ArtifactError as exc:  # its own message says how to train it
            raise ArtifactError(f"BST draws hard negatives from {config.retriever}: {exc}") from exc
        hard = hard_pools(retriever, prefixes, targets, min(config.hard_pool, dataset.n_items - 1))
    data = BSTData(hist, gaps, targets, hard, dataset.n_items, config.negatives, config.hard_share)
    if times is None:
        data.notes.append(f"dataset {dataset.name!r} has no timestamps: BST uses distance gaps")
    return data


SPEC = ModelSpec(
    name="bst",
    title="BST",
    config_type=BSTConfig,
    train_type=BSTTrainConfig,
    build=BST,
    scorer=_scorer,
    data=_data,
    presets={"paper": {"mlp": [1024, 512, 256], "dropout": 0.2}},
)

__all__ = ["BST", "SPEC", "BSTConfig", "BSTScorer", "BSTTrainConfig", "position_gaps"]
