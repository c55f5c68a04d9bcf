"""In-batch contrastive learning: InfoNCE with a learnable temperature, and the small MLP that
projects a text vector into another space.

`info_nce(a, b, log_scale)`: row i of `a` should be most similar to row i of `b` among all
rows of `b` in the batch (cosine similarity times exp(log_scale), cross-entropy). When every
row is the same vector the logits are all equal and the loss is exactly ln(batch): the loss
of guessing. `symmetric=True` averages both directions (a -> b and b -> a), as CTRL does."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_SCALE = 100.0  # CLIP's cap on the inverse temperature


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    log_scale: torch.Tensor | float,
    symmetric: bool = False,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE of paired rows (B, D) x (B, D); `log_scale` = ln(1 / temperature), clamped to
    at most ln(100); `weights` (B,) weigh each pair's term (default: equal)."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"paired rows must have one shape (B, D), got {a.shape} and {b.shape}")
    scale = torch.as_tensor(log_scale, dtype=a.dtype, device=a.device).clamp(
        max=math.log(MAX_SCALE)
    )
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T * scale.exp()
    target = torch.arange(len(a), device=a.device)
    per_row = F.cross_entropy(logits, target, reduction="none")
    if symmetric:
        per_row = (per_row + F.cross_entropy(logits.T, target, reduction="none")) / 2
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum().clamp(min=1e-12)


class Projection(nn.Module):
    """A 2-layer MLP (in -> hidden -> out, GELU) with a residual path when in == out, so a
    fresh projection starts close to the identity of the text space it refines; `dropout` on
    the hidden layer while training."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        hidden = hidden or max(in_dim, out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.dropout = dropout
        last = nn.Linear(hidden, out_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), last)
        self.residual = in_dim == out_dim
        if self.residual:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, act, last = self.net
        h = F.dropout(act(first(x)), self.dropout, self.training)
        y = last(h)
        return x + y if self.residual else y


__all__ = ["MAX_SCALE", "Projection", "info_nce"]
