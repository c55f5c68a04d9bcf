"""BERT4Rec (Sun et al., CIKM 2019; FeiSun/BERT4Rec, asash/bert4rec_repro): a bidirectional
transformer over the item sequence, trained by Cloze (predict masked items from both sides).

Shapes: B = batch, L = sequence length (<= `max_len`), D = `dim`, N = items, M = masked
positions in a batch. Vocabulary: 0 = padding, 1..N = items, N + 1 = [MASK]. Sequences are
left-padded; positions count back from the newest slot (0 = the last), so extra padding never
moves a real token's position.

- Embedding: LayerNorm(E_item + P_pos), then dropout.
- Blocks: post-LN, bidirectional (no causal mask; padded keys masked), GELU feed-forward.
- Head: Dense + GELU + LayerNorm, then h E_item^T + b over the items (tied embeddings, a
  per-item bias).
- Training: in each window, round(rho * length) positions (at least 1, at most
  `max_predictions`) become [MASK] (mask_prob 1.0 as in the original: no 80/10/10); a share
  `last_item_mask` of windows instead mask only their last item, the inference task (the
  original adds one such sample per user). Each window appears `copies` times per epoch (the
  original's dupe factor 10), masked anew each time. Full-softmax cross-entropy at the masked
  positions only, gathered before the vocabulary product (a B x L x N logit tensor does not
  fit a CPU).
- Inference: append [MASK] after the history (its newest `max_len - 1` items) and score the
  logits there.

Trained long, with patient early stopping: its published failures are under-training
(Petrov & Macdonald, RecSys 2022).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recagent.models.recipe import trunc_normal_init
from recagent.models.registry import ModelSpec, Resolve
from recagent.models.sasrec import CausalSelfAttention
from recagent.models.sequential import sequence_scorer
from recagent.models.train_config import TrainConfig
from recagent.models.windows import WindowData, window_data

IGNORE = -100  # the label of a position that is not masked (cross_entropy's ignore_index)


class BERT4RecConfig(BaseModel):
    """The architecture and Cloze settings of a BERT4Rec model (saved in its checkpoint).
    Defaults: the original ML-1M architecture (d 64, 2 layers, 2 heads, FFN 256, dropout 0.2,
    length 200, rho 0.2, 40 predictions at most)."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=4, le=1024)
    layers: int = Field(2, ge=1, le=12)
    heads: int = Field(2, ge=1, le=16, description="Attention heads (must divide dim).")
    ff_dim: int = Field(256, ge=4, le=8192)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(200, ge=2, le=2048, description="Tokens read, [MASK] included.")
    mask_prob: float = Field(0.2, gt=0.0, le=1.0, description="Share of a window masked.")
    max_predictions: int = Field(40, ge=1, le=2048, description="Most masks per window.")
    last_item_mask: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of windows that mask only their last item."
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> BERT4RecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class BERT4RecTrainConfig(TrainConfig):
    """Constant-rate AdamW, each window in `copies` independently masked copies per epoch.
    Klenitskiy & Vasilev's 1e-3, batch 128, patience 20 over single copies trained
    ml-latest-small for ~135 steps (5 per epoch) to valid NDCG@10 0.024, barely above
    popularity (0.019); with 10 copies, batch 32 and 3e-3 (chosen on valid; 5e-3 diverges
    to 0.026) it reached 0.043 in 4 minutes on one thread, still rising."""

    batch_size: int = Field(32, ge=1, le=65_536)
    lr: float = Field(3e-3, gt=0, le=1.0)
    patience: int = Field(10, ge=1, description="Epochs (of `copies` passes) without a gain.")
    lr_patience: int | None = Field(None, ge=1)
    copies: int = Field(
        10,
        ge=1,
        le=1000,
        description="Independently masked copies of each window per epoch (the original's "
        "dupe factor 10): one copy masks only a fifth of a window, so an epoch of single "
        "copies is a few optimizer steps and patience in epochs would stop training early.",
    )


class Block(nn.Module):
    """Post-LN bidirectional block: LN(x + Drop(MHA(x))), then LN(x + Drop(FFN(x)))."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config.dim, config.heads)  # any mask: here, keys only
        self.norm1 = nn.LayerNorm(config.dim)
        self.ff = nn.Sequential(
            nn.Linear(config.dim, config.ff_dim), nn.GELU(), nn.Linear(config.ff_dim, config.dim)
        )
        self.norm2 = nn.LayerNorm(config.dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, weights = self.attn(x, mask, need_weights)
        x = self.norm1(x + self.dropout(y))
        x = self.norm2(x + self.dropout(self.ff(x)))
        return x, weights


def key_padding_mask(real: torch.Tensor) -> torch.Tensor:
    """Additive mask (B, 1, L, L): every query sees every real key (and itself, so a padded
    row is never a softmax over nothing)."""
    length = real.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=real.device)
    allowed = real[:, None, :] | eye
    mask = torch.zeros(allowed.shape, device=real.device).masked_fill_(~allowed, float("-inf"))
    return mask[:, None]


class BERT4Rec(nn.Module):
    """The network. Items use item_idx 1..n_items; 0 is padding, n_items + 1 is [MASK]."""

    def __init__(self, n_items: int, config: BERT4RecConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.mask_id = n_items + 1
        self.config = config
        self.item_emb = nn.Embedding(n_items + 2, config.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.emb_norm = nn.LayerNorm(config.dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.head = nn.Sequential(
            nn.Linear(config.dim, config.dim), nn.GELU(), nn.LayerNorm(config.dim)
        )
        self.out_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.apply(trunc_normal_init)

    def encode(
        self, seq: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """States (B, L, D) of left-padded `seq` (B, L) (items and [MASK]) and, with
        `need_weights`, each block's attention (B, H, L, L)."""
        length = seq.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} > max_len {self.config.max_len}")
        real = seq > 0
        pos = torch.arange(length - 1, -1, -1, device=seq.device)  # 0 = the newest slot
        x = self.dropout(self.emb_norm(self.item_emb(seq) + self.pos_emb(pos)))
        mask = key_padding_mask(real)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, need_weights)
            if w is not None:
                weights.append(w)
        return x, weights

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., N) scores of items 1..N for states (..., D) (column j = item_idx j + 1)."""
        return self.head(hidden) @ self.item_emb.weight[1 : self.n_items + 1].T + self.out_bias[1:]

    def cloze(
        self, items: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) for left-padded windows `items` (B, L): chosen positions become
        [MASK] in `inputs` and keep their item in `labels` (IGNORE elsewhere)."""
        c = self.config
        real = items > 0
        lengths = real.sum(1)
        k = (lengths.double() * c.mask_prob).round().long().clamp(min=1, max=c.max_predictions)
        noise = torch.rand(items.shape, device=items.device, generator=generator)
        noise = noise.masked_fill(~real, 2.0)  # padding sorts last: never chosen
        rank = noise.argsort(1).argsort(1)  # (B, L): 0 = the first chosen
        chosen = (rank < k[:, None]) & real
        if c.last_item_mask > 0:
            last_only = torch.rand(len(items), device=items.device, generator=generator)
            last_only = last_only < c.last_item_mask
            only_last = torch.zeros_like(chosen)
            only_last[:, -1] = real[:, -1]
            chosen = torch.where(last_only[:, None], only_last, chosen)
        inputs = items.masked_fill(chosen, self.mask_id)
        labels = items.masked_fill(~chosen, IGNORE)
        return inputs, labels

    # --- the NextItemModel interface (recagent.models.sequential) ---------------------------

    @property
    def history_len(self) -> int:
        return self.config.max_len - 1  # and the [MASK] after it

    def _with_mask(self, seq: torch.Tensor) -> torch.Tensor:
        mask = torch.full((len(seq), 1), self.mask_id, dtype=seq.dtype, device=seq.device)
        return torch.cat([seq[:, -self.history_len :], mask], dim=1)

    def score_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N + 1) scores at a [MASK] appended to each history; column 0 is -inf."""
        hidden = self.encode(self._with_mask(seq))[0][:, -1]
        out = F.pad(self.logits(hidden), (1, 0), value=float("-inf"))
        return out

    def attention_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) the last block's attention from the appended [MASK] to the history."""
        weights = self.encode(self._with_mask(seq), need_weights=True)[1][-1]
        return weights[:, :, -1, -1 - seq.shape[1] : -1].mean(1)

    def batch_loss(
        self,
        items: torch.Tensor,
        times: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cloze loss of left-padded windows (B, L): cross-entropy over every item at the
        masked positions only."""
        inputs, labels = self.cloze(items, generator)
        hidden = self.encode(inputs)[0]
        chosen = labels != IGNORE
        return F.cross_entropy(self.logits(hidden[chosen]), labels[chosen] - 1)  # (M, N)


def _data(
    dataset: Any, config: BERT4RecConfig, options: BERT4RecTrainConfig, resolve: Resolve
) -> WindowData:
    # windows of max_len items: read whole, with some of them masked (each `copies` times)
    return window_data(
        dataset, config.max_len - 1, options.windows, options.window_step, False, options.copies
    )


SPEC = ModelSpec(
    name="bert4rec",
    title="BERT4Rec",
    config_type=BERT4RecConfig,
    train_type=BERT4RecTrainConfig,
    build=BERT4Rec,
    scorer=sequence_scorer("bert4rec"),
    data=_data,
    presets={
        "ml-1m": {},
        # Petrov & Macdonald's HuggingFace version: 3 layers, FFN 128, length 100
        "hf": {"layers": 3, "ff_dim": 128, "max_len": 100},
    },
)

__all__ = [
    "IGNORE",
    "SPEC",
    "BERT4Rec",
    "BERT4RecConfig",
    "BERT4RecTrainConfig",
    "key_padding_mask",
]
