"""The training recipe the sequence models share: initialisation, weight-decay groups, and
the two softmax losses (full cross-entropy over the catalog, or a sampled softmax).

Shapes: P = positions that predict something, D = hidden size, N = items (item_idx 1..N;
row 0 of an embedding table is padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COLLISION_LOGIT = -5e4  # a sampled negative equal to the positive (HSTU's value, not -inf)


def trunc_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal weights (std 0.02, cut at 2 std), zero biases, unit norms: the
    BERT/LRURec/HSTU initialisation. Apply with `model.apply(trunc_normal_init)`."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """AdamW groups: weight decay on the matrices of linear layers (and free parameter
    matrices), none on biases, norms and embedding tables (decaying rare items' rows toward
    zero only hurts them)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def tied_logits(
    hidden: torch.Tensor, item_weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Scores of every item (..., N + 1) for states (..., D) against the (tied) item table
    (N + 1, D), plus a per-item `bias` (N + 1,) if any; column 0 (padding) is -inf."""
    out = hidden @ item_weight.T
    if bias is not None:
        out = out + bias
    out[..., 0] = float("-inf")
    return out


def full_ce(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy over every item: hidden (P, D), targets (P,) item_idx in 1..N,
    item_weight (N + 1, D) with row 0 = padding (never a class), bias (N + 1,) or None."""
    logits = hidden @ item_weight[1:].T  # (P, N)
    if bias is not None:
        logits = logits + bias[1:]
    return F.cross_entropy(logits, targets - 1)


def sampled_softmax(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    negatives: int,
    generator: torch.Generator | None = None,
    bias: torch.Tensor | None = None,
    temperature: float | None = None,
) -> torch.Tensor:
    """Softmax over the positive and one pool of `negatives` items drawn uniformly for the
    whole batch (cheap on a CPU: one (P, D) x (D, R) product). A negative equal to a
    position's positive gets `COLLISION_LOGIT`, so it never counts against it.

    `temperature` None: dot products (plus `bias`). Otherwise cosine similarity / temperature
    (HSTU: hidden and item vectors L2-normalised, tau 0.05)."""
    n_items = item_weight.shape[0] - 1
    neg = torch.randint(1, n_items + 1, (negatives,), device=hidden.device, generator=generator)
    pos_w, neg_w = item_weight[targets], item_weight[neg]  # (P, D), (R, D)
    if temperature is not None:
        hidden = F.normalize(hidden, dim=-1)
        pos_w, neg_w = F.normalize(pos_w, dim=-1), F.normalize(neg_w, dim=-1)
    pos_logit = (hidden * pos_w).sum(-1)  # (P,)
    neg_logit = hidden @ neg_w.T  # (P, R)
    if bias is not None:
        pos_logit, neg_logit = pos_logit + bias[targets], neg_logit + bias[neg]
    if temperature is not None:
        pos_logit, neg_logit = pos_logit / temperature, neg_logit / temperature
    neg_logit = neg_logit.masked_fill(neg[None, :] == targets[:, None], COLLISION_LOGIT)
    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


__all__ = [
    "COLLISION_LOGIT",
    "full_ce",
    "param_groups",
    "sampled_softmax",
    "tied_logits",
    "trunc_normal_init",
]
