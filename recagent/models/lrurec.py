"""LRURec (Yue et al., "Linear Recurrent Units for Sequential Recommendation", WSDM 2024): a
stack of linear recurrent units over the item sequence, trained by full cross-entropy at
every position.

Shapes: B = batch, L = sequence length (<= `max_len`), D = `dim`, S = `state` (complex state
size, 2 D by default), N = items. Sequences are item_idx tensors, left-padded with 0.

- Embedding: LayerNorm(Dropout(E_item[seq])); no position embedding (the recurrence orders).
- An LRU layer: a diagonal complex recurrence h_t = lambda * h_{t-1} + gamma * (B x_t), then
  y_t = LayerNorm(Dropout(Re(C h_t)) + x_t). lambda = exp(-nu + i theta) is initialised on a
  ring (|lambda| uniform in area between r_min 0.8 and r_max 0.99, phase in [0, 2 pi));
  gamma = sqrt(1 - |lambda|^2) keeps the state's scale whatever |lambda| (the "gamma
  normalisation"). nu, theta and gamma are learned as logs. B and C are complex matrices;
  here a real (D -> 2S) and (2S -> D) linear map over the real and imaginary parts (the same
  function, without complex dtypes in the matmuls).
- A block: the LRU layer, then a position-wise feed-forward (D -> 4D, GELU, -> D), post-LN with
  a residual (the authors' `PositionwiseFeedForward`).
- Scores: h E_item^T + b (tied embeddings, a per-item bias).

Training reads the recurrence in parallel: h_t = sum_{j <= t} lambda^(t - j) b_j computed by a
blocked scan over power-of-two blocks (log2 L steps, each adding the carry of a block's first
half to its second half), not a loop over positions. Padding contributes nothing (b = 0 on
padded slots), so extra left padding never changes a real position. Scoring needs only the
last state of the last layer: sum_j lambda^(L-1-j) b_j, one weighted sum instead of a scan,
and `step` advances every layer's state by one item (the recurrent form: a new item costs
O(1), not a pass over the history).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recagent.models.padding import shift
from recagent.models.recipe import full_ce, tied_logits, trunc_normal_init
from recagent.models.registry import ModelSpec, Resolve
from recagent.models.sequential import sequence_scorer
from recagent.models.train_config import TrainConfig
from recagent.models.windows import WindowData, window_data


class LRURecConfig(BaseModel):
    """The architecture of an LRURec model (saved in its checkpoint). Defaults: the authors'
    published setting (hidden 64, 2 blocks, length 200, complex state 2 x hidden, ring 0.8 to
    0.99), except dropout: 0.5 here, chosen on ml-latest-small valid (seed 0: valid NDCG@10
    0.0861 at 0.5, 0.0844 at the authors' 0.2, 0.0846 at 0.2 without weight decay; the
    `paper` preset keeps 0.2). RESULTS.md, "LRURec"."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=4, le=1024, description="Embedding and hidden size D.")
    layers: int = Field(2, ge=1, le=12, description="LRU blocks.")
    state: int | None = Field(None, ge=2, le=8192, description="Complex state size (None: 2 D).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Embedding and feed-forward dropout.")
    lru_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout of the LRU output.")
    max_len: int = Field(200, ge=2, le=4096, description="Longest history read.")
    r_min: float = Field(0.8, gt=0.0, lt=1.0, description="Smallest initial |lambda|.")
    r_max: float = Field(0.99, gt=0.0, lt=1.0, description="Largest initial |lambda|.")

    @model_validator(mode="after")
    def _ring(self) -> LRURecConfig:
        if self.r_min >= self.r_max:
            raise ValueError(f"r_min ({self.r_min}) must be below r_max ({self.r_max})")
        return self

    @property
    def state_size(self) -> int:
        return self.state or 2 * self.dim


class LRURecTrainConfig(TrainConfig):
    """The authors' optimiser (AdamW, lr 1e-3, weight decay 0.01). Batch 32 here, not their
    128: ml-latest-small is ~1,000 windows, so 128 gives 8 steps an epoch and validation (each
    epoch) would dominate a CPU run."""

    batch_size: int = Field(32, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0, le=1.0)
    weight_decay: float = Field(0.01, ge=0)


def ring_init(size: int, r_min: float, r_max: float) -> torch.Tensor:
    """(3, S) logs of nu, theta and gamma: |lambda| = exp(-nu) uniform on the ring's area
    between r_min and r_max, theta uniform in [0, 2 pi), gamma = sqrt(1 - |lambda|^2)."""
    u1, u2 = torch.rand(size), torch.rand(size)
    nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = torch.log(u2 * 2 * math.pi)
    gamma_log = 0.5 * torch.log(1 - torch.exp(-2 * torch.exp(nu_log)))  # |lambda|^2 = e^-2nu
    return torch.stack([nu_log, theta_log, gamma_log])


def scan(b: torch.Tensor, log_lam: torch.Tensor) -> torch.Tensor:
    """h_t = lam * h_{t-1} + b_t for every t, h_{-1} = 0: b (B, L, S) complex, log_lam (S,)
    complex, the log of lam. Blocked parallel scan: left-pad L to a power of two P, then for
    block sizes 2, 4, ..., P add each block's first-half last state, times lam^1 ..
    lam^(size/2), to its second half (log2 P vector steps)."""
    batch, length, size = b.shape
    if length == 1:
        return b
    steps = math.ceil(math.log2(length))
    padded = 2**steps
    h = F.pad(b, (0, 0, padded - length, 0)) if padded > length else b
    powers = torch.exp(torch.arange(1, padded // 2 + 1, device=b.device)[:, None] * log_lam)
    for step in range(1, steps + 1):
        half = 2 ** (step - 1)
        blocks = h.reshape(batch, padded // (2 * half), 2 * half, size)
        first, second = blocks[:, :, :half], blocks[:, :, half:]
        second = second + powers[:half] * first[:, :, -1:]
        h = torch.cat([first, second], dim=2).reshape(batch, padded, size)
    return h[:, padded - length :]


class LRULayer(nn.Module):
    """One linear recurrent unit with its residual and LayerNorm (module docstring)."""

    def __init__(self, config: LRURecConfig) -> None:
        super().__init__()
        size = config.state_size
        self.size = size
        self.params_log = nn.Parameter(ring_init(size, config.r_min, config.r_max))
        self.in_proj = nn.Linear(config.dim, 2 * size)  # B: real and imaginary parts
        self.out_proj = nn.Linear(2 * size, config.dim)  # Re(C h) over [Re h, Im h]
        self.dropout = nn.Dropout(config.lru_dropout)
        self.norm = nn.LayerNorm(config.dim)

    def log_lambda(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log lambda, gamma): the diagonal recurrence's log, -nu + i theta (S,) complex,
        and the input scale (S,)."""
        nu, theta, gamma = torch.exp(self.params_log)
        return torch.complex(-nu, theta), gamma

    def inputs(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """b = gamma * B x (..., S) complex, zero on padded slots."""
        re, im = self.in_proj(x).split(self.size, dim=-1)
        gamma = self.log_lambda()[1]
        return torch.complex(re * gamma, im * gamma) * real[..., None]

    def output(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y = LN(Dropout(Re(C h)) + x) for states h (..., S) complex and inputs x (..., D)."""
        return self.norm(self.dropout(self.out_proj(torch.cat([h.real, h.imag], -1))) + x)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D) at every position; `real` (B, L) marks real items."""
        return self.output(scan(self.inputs(x, real), self.log_lambda()[0]), x)

    def last(self, x: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output (B, D) at the last position only, from the last state
        sum_j lambda^(L-1-j) b_j (one weighted sum, no scan), and each position's share of it
        (B, L): the norm of C lambda^(L-1-j) b_j, what item j adds to the output, normalised."""
        b = self.inputs(x, real)  # (B, L, S)
        back = torch.arange(x.shape[1] - 1, -1, -1, device=x.device)[:, None]
        parts = torch.exp(back * self.log_lambda()[0]) * b  # (B, L, S): lambda^(L-1-j) b_j
        c = self.out_proj.weight  # (D, 2S)
        moved = torch.cat([parts.real, parts.imag], -1) @ c.T  # (B, L, D), bias left out
        share = moved.norm(dim=-1) * real
        share = share / share.sum(1, keepdim=True).clamp(min=1e-12)
        return self.output(parts.sum(1), x[:, -1]), share

    def step(self, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent form: (new state (B, S), output (B, D)) after one more input x (B, D)."""
        h = torch.exp(self.log_lambda()[0]) * h + self.inputs(
            x, torch.ones(x.shape[0], device=x.device)
        )
        return h, self.output(h, x)


class FeedForward(nn.Module):
    """Position-wise D -> 4D -> D with GELU, dropout, residual and post-LN."""

    def __init__(self, config: LRURecConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, 4 * config.dim)
        self.w2 = nn.Linear(4 * config.dim, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(self.w2(self.dropout(F.gelu(self.w1(x))))) + x)


class LRURec(nn.Module):
    """The network. `n_items` real items use item_idx 1..n_items; row 0 is padding."""

    def __init__(self, n_items: int, config: LRURecConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.config = config
        self.item_emb = nn.Embedding(n_items + 1, config.dim, padding_idx=0)
        self.emb_norm = nn.LayerNorm(config.dim)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.lru = nn.ModuleList(LRULayer(config) for _ in range(config.layers))
        self.ff = nn.ModuleList(FeedForward(config) for _ in range(config.layers))
        self.out_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.apply(trunc_normal_init)  # leaves params_log (the ring) as initialised

    def blocks(self) -> list[tuple[LRULayer, FeedForward]]:
        """Each block's LRU layer and feed-forward, in order."""
        pairs = zip(self.lru, self.ff, strict=True)
        return [(cast(LRULayer, a), cast(FeedForward, b)) for a, b in pairs]

    def embed(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if seq.shape[1] > self.config.max_len:
            raise ValueError(f"sequence length {seq.shape[1]} > max_len {self.config.max_len}")
        return self.emb_norm(self.emb_dropout(self.item_emb(seq))), seq > 0

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """States (B, L, D) at every position of left-padded `seq` (B, L) (parallel form)."""
        x, real = self.embed(seq)
        for lru, ff in self.blocks():
            x = ff(lru(x, real))
        return x

    def encode_last(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state (B, D) after each history, and (B, L) how much each history slot moved
        the last layer's state (0 on padding): every layer but the last in parallel, the
        last at its last position only."""
        x, real = self.embed(seq)
        *lower, (top, top_ff) = self.blocks()
        for lru, ff in lower:
            x = ff(lru(x, real))
        last, share = top.last(x, real)
        return top_ff(last), share

    def recurrent(self, seq: torch.Tensor) -> torch.Tensor:
        """The same states as `encode`, item by item through `step` (for checking and for
        streaming); padded slots give zeros."""
        batch, length = seq.shape
        x, real = self.embed(seq)
        blocks = self.blocks()
        states = [
            torch.zeros(batch, lru.size, dtype=torch.complex64, device=seq.device)
            for lru, _ in blocks
        ]
        out = torch.zeros(batch, length, self.config.dim, device=seq.device)
        for t in range(length):
            keep = real[:, t]
            y = x[:, t]
            for i, (lru, ff) in enumerate(blocks):
                h, y = lru.step(states[i], y)
                states[i] = torch.where(keep[:, None], h, states[i])
                y = ff(y)
            out[:, t] = y * keep[:, None]
        return out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., N + 1) scores h E^T + b; column 0 (padding) is -inf."""
        return tied_logits(hidden, self.item_emb.weight, self.out_bias)

    # --- the NextItemModel interface (recagent.models.sequential) ---------------------------

    @property
    def history_len(self) -> int:
        return self.config.max_len

    def score_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N + 1) scores of the item after each left-padded history; column 0 = -inf."""
        return self.logits(self.encode_last(seq)[0])

    def attention_last(self, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) each slot's share of what moved the last layer's final state (0 on
        padding): the explanation's "history items that weighed most"."""
        return self.encode_last(seq)[1]

    def batch_loss(
        self,
        items: torch.Tensor,
        times: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Full-softmax cross-entropy of left-padded windows (B, L + 1): every position
        predicts the next item, over every item."""
        seq, targets = shift(items)
        h = self.encode(seq)
        keep = targets > 0
        return full_ce(h[keep], targets[keep], self.item_emb.weight, self.out_bias)


def _data(dataset: Any, config: LRURecConfig, options: TrainConfig, resolve: Resolve) -> WindowData:
    return window_data(dataset, config.max_len, options.windows, options.window_step, False)


SPEC = ModelSpec(
    name="lrurec",
    title="LRURec",
    config_type=LRURecConfig,
    train_type=LRURecTrainConfig,
    build=LRURec,
    scorer=sequence_scorer("lrurec"),
    data=_data,
    presets={"paper": {"dropout": 0.2, "lru_dropout": 0.2}},
)

__all__ = [
    "SPEC",
    "FeedForward",
    "LRULayer",
    "LRURec",
    "LRURecConfig",
    "LRURecTrainConfig",
    "ring_init",
    "scan",
]
