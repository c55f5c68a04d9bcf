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

from recagent.models.padding import embed_left_padded, left_pad, shift
from recagent.models.recipe import full_ce, sampled_softmax, tied_logits
from recagent.models.sasrec_config import Loss, SASRecConfig


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention under an additive mask (B, 1, queries, keys): 0 where a query
    may attend to a key, -inf where it may not.

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
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        need_weights: bool = False,
        queries: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from `queries` (B, Q, D; default: every position of x) to x (B, L, D);
        `mask` is (B, 1, Q, L)."""
        b, length, dim = x.shape
        queries = x if queries is None else queries
        w_q, w_kv = self.qkv.weight.split([dim, 2 * dim])
        b_q, b_kv = self.qkv.bias.split([dim, 2 * dim])
        q = F.linear(queries, w_q, b_q).view(b, -1, self.heads, dim // self.heads)
        k, v = F.linear(x, w_kv, b_kv).view(b, length, 2, self.heads, dim // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, Q or L, D/H)
        weights = None
        if need_weights:
            logits = q @ k.transpose(-1, -2) / math.sqrt(dim // self.heads)  # (B, H, Q, L)
            weights = (logits + mask).softmax(-1)
            y = weights @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, -1, dim)), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, dim: int, heads: int, dropout: float, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        need_weights: bool = False,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L, D) -> (B, L, D), or (B, 1, D) for the last position only (`last_only`: what
        scoring needs from the final block, at a fraction of the cost)."""
        h = self.norm1(x)
        if last_only:
            x, mask = x[:, -1:], mask[:, :, -1:]
        y, weights = self.attn(h, mask, need_weights, queries=h[:, -1:] if last_only else h)
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
            Block(dim, config.heads, config.dropout, config.ff_mult * dim)
            for _ in range(config.layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        # a learned per-item output bias (LRURec's recipe), only when configured
        self.out_bias = nn.Parameter(torch.zeros(n_items + 1)) if config.output_bias else None
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
        self, seq: torch.Tensor, need_weights: bool = False, last_only: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hidden states (B, L, D) of left-padded `seq` (B, L), L <= max_len (with
        `last_only`, (B, D) of the last position: the state that scores the next item) and,
        with `need_weights`, each block's attention weights (B, H, L or 1, L)."""
        x, real = embed_left_padded(seq, self.item_emb, self.pos_emb, self.emb_dropout)
        mask = attention_mask(real)
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, mask, need_weights, last_only and i == len(self.blocks) - 1)
            if w is not None:
                weights.append(w)
        x = self.final_norm(x)
        return (x[:, -1] if last_only else x), weights

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.hidden(seq)[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item (..., N + 1) for hidden states (..., D); column 0 is -inf."""
        return tied_logits(hidden, self.item_emb.weight, self.out_bias)

    # --- the NextItemModel interface (recagent.models.sequential) ---------------------------

    @property
    def history_len(self) -> int:
        return self.config.max_len

    def score_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N + 1) scores of the item after each left-padded history (B, L)."""
        return self.logits(self.hidden(seq, last_only=True)[0])

    def attention_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) the last block's attention from the last position, averaged over heads."""
        weights = self.hidden(seq, need_weights=True, last_only=True)[1][-1]  # (B, H, 1, L)
        return weights[:, :, -1].mean(1)

    def batch_loss(
        self,
        items: torch.Tensor,
        times: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The loss of left-padded training windows (B, L + 1): every position predicts the
        next item."""
        return self.loss(*shift(items), generator)

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
            return full_ce(h, pos, self.item_emb.weight, self.out_bias)
        if self.config.loss == "sampled-softmax":  # one shared pool of negatives per batch
            return sampled_softmax(
                h, pos, self.item_emb.weight, self.config.negatives, generator, self.out_bias
            )
        pos_logit = (h * self.item_emb(pos)).sum(-1)  # (P,)
        if self.out_bias is not None:
            pos_logit = pos_logit + self.out_bias[pos]
        if self.config.loss == "bce":
            neg = torch.randint(1, n + 1, pos.shape, device=h.device, generator=generator)
            neg_logit = (h * self.item_emb(neg)).sum(-1)
            if self.out_bias is not None:
                neg_logit = neg_logit + self.out_bias[neg]
            return F.binary_cross_entropy_with_logits(
                torch.cat([pos_logit, neg_logit]),
                torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)]),
            )
        raise ValueError(f"unknown loss {self.config.loss!r}")


def attention_mask(real: torch.Tensor) -> torch.Tensor:
    """Additive mask (B, 1, L, L) for `real` (B, L), built once for all blocks: query t may
    attend to key s if s <= t and s is a real item, and always to itself, so a row of padding
    never becomes a softmax over nothing (NaN)."""
    length = real.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=real.device)
    allowed = (causal & real[:, None, :]) | eye
    mask = torch.zeros(allowed.shape, device=real.device).masked_fill_(~allowed, float("-inf"))
    return mask[:, None]


__all__ = [
    "Block",
    "CausalSelfAttention",
    "Loss",
    "SASRec",
    "SASRecConfig",
    "attention_mask",
    "left_pad",
]
