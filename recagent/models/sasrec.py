"""SASRec (Kang & McAuley, ICDM 2018): a causal transformer over a user's item sequence.

Shapes use B = batch, L = sequence length, D = `dim`, N = number of items. Sequences are
item_idx tensors, left-padded with 0 (padding). The model reads a sequence and, at every
position t, predicts the item at t + 1 by the dot product of its hidden state with the item
embeddings (input and output embeddings are shared).

What makes this one correct where compact reference implementations are not:

- Attention is masked twice: causally (a position sees itself and the past) and on keys
  (no position attends to padding). A query row whose keys are all padding would be a
  softmax over nothing (NaN), so every position may always attend to itself; padded
  positions then carry finite garbage that no output ever reads.
- Positions count from the first real item of a sequence, so left-padding a history does not
  change its scores and appending an item does not change the earlier positions' outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recagent.models.sasrec_config import Loss, SASRecConfig


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention under a boolean `allowed` mask (B, L, L).

    Runs PyTorch's fused attention kernel; `need_weights` takes the explicit (slower) path
    that also returns the attention weights (B, H, L, L). Both compute the same thing. No
    dropout on the attention weights: it would force the unfused kernel and, on a CPU, cost
    more time than the whole attention (the blocks drop out their outputs instead)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, dim // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D/H)
        mask = allowed[:, None]  # (B, 1, L, L), broadcast over heads
        weights = None
        if need_weights:
            logits = q @ k.transpose(-1, -2) / math.sqrt(dim // self.heads)  # (B, H, L, L)
            weights = logits.masked_fill(~mask, float("-inf")).softmax(-1)
            y = weights @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, length, dim)), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, weights = self.attn(self.norm1(x), allowed, need_weights)
        x = x + self.dropout(y)
        x = x + self.dropout(self.ff(self.norm2(x)))
        return x, weights


class SASRec(nn.Module):
    """The network. `n_items` real items use item_idx 1..n_items; row 0 is padding."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.config = config
        dim = config.dim
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, dim)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(dim, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def hidden(
        self, seq: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hidden states (B, L, D) of left-padded `seq` (B, L), L <= max_len, and, with
        `need_weights`, each block's attention weights (B, H, L, L)."""
        if seq.shape[1] > self.config.max_len:
            raise ValueError(f"sequence length {seq.shape[1]} > max_len {self.config.max_len}")
        real = seq > 0  # (B, L)
        pos = (real.cumsum(1) - 1).clamp(min=0)  # 0 at the first real item
        x = self.item_emb(seq) * math.sqrt(self.config.dim) + self.pos_emb(pos)
        x = self.emb_dropout(x) * real[..., None]
        length = seq.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        allowed = (causal & real[:, None, :]) | eye  # (B, L, L): query row, key column
        weights = []
        for block in self.blocks:
            x, w = block(x, allowed, need_weights)
            if w is not None:
                weights.append(w)
        return self.final_norm(x), weights

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.hidden(seq)[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item (..., N + 1) for hidden states (..., D); column 0 is -inf."""
        out = hidden @ self.item_emb.weight.T
        out[..., 0] = float("-inf")
        return out

    def loss(
        self,
        seq: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Mean next-item loss over the real positions of `seq` (B, L); `targets` (B, L)
        holds the next item at each position (0 where there is none)."""
        h = self(seq)
        keep = targets > 0
        h, pos = h[keep], targets[keep]  # (P, D), (P,)
        n = self.n_items
        if self.config.loss == "full-ce":
            return F.cross_entropy(self.logits(h), pos)
        pos_logit = (h * self.item_emb(pos)).sum(-1)  # (P,)
        if self.config.loss == "bce":
            neg = torch.randint(1, n + 1, pos.shape, device=h.device, generator=generator)
            neg_logit = (h * self.item_emb(neg)).sum(-1)
            return F.binary_cross_entropy_with_logits(
                torch.cat([pos_logit, neg_logit]),
                torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)]),
            )
        # sampled-softmax: one shared pool of uniform negatives for the whole batch
        neg = torch.randint(
            1, n + 1, (self.config.negatives,), device=h.device, generator=generator
        )
        neg_logit = h @ self.item_emb(neg).T  # (P, K)
        neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))
        all_logit = torch.cat([pos_logit[:, None], neg_logit], dim=1)
        return F.cross_entropy(all_logit, torch.zeros_like(pos))


def left_pad(histories: list[torch.Tensor] | list, max_len: int) -> torch.Tensor:
    """Stack item_idx histories into a (B, L) int64 tensor, keeping each one's last `max_len`
    items, left-padded with 0 to the longest (at least 1 column, so an empty history works)."""
    rows = [torch.as_tensor(h, dtype=torch.long)[-max_len:] for h in histories]
    length = max([len(r) for r in rows] + [1])
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, length - len(r) :] = r
    return out


__all__ = ["Block", "CausalSelfAttention", "Loss", "SASRec", "SASRecConfig", "left_pad"]
