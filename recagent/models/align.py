"""Text alignment of a sequence model's item table (CTRL-lite, after Li et al., 2023), and the
text -> item-embedding projection that embeds items without interactions.

Shapes: N = items (item_idx 1..N; row 0 is padding), D = the model's item dim, T = the text
vectors' dim. Every step pairs row i of the item table with the text vector of item i.

1. `align_table` (stage 1, before training): a fresh `Projection` (T -> D) and the item
   table learn together, by symmetric InfoNCE over batches of warm items (items with
   training interactions), to put an item's row near its projected text.
2. The model trains as usual (stage 2; `recagent.models.train`, unchanged).
3. `fit_text_projection` (once, when training ends): a new projection learns,
   with the trained table frozen, to find each warm item's row from its text. Its
   temperature is the one of `AlignConfig.temperatures` that best finds held-out warm items
   among each other; its outputs get the median norm of the warm rows. `fill_cold_rows` then
   writes the projected text of every item with no training interaction into the table, so
   the saved model scores them from their text. (The checkpoint's valid metrics were measured
   before this: with the rows those items had in training.)
4. `grow_catalog` (when loading): items added to the catalog after training get rows from
   their text the same way, in the catalog's order.

The projection travels in the checkpoint under `TEXT_PROJECTION`, with the fingerprint of the
embedder and template its text vectors came from; vectors from another one are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recagent.errors import ArtifactError, ConfigError
from recagent.models.align_config import AlignConfig
from recagent.models.checkpoint import TEXT_PROJECTION
from recagent.represent.contrastive import Projection, info_nce
from recagent.represent.text_vectors import TextVectors

TABLE = "item_emb.weight"
BIAS = "out_bias"
NO_INTERACTIONS = "no training interactions"
ADDED = "added after training"


def paired_text(text: TextVectors, n_items: int, config: AlignConfig) -> torch.Tensor:
    """(N + 1, T) text rows, row i paired with item i; under `shuffle_text`, each item is
    paired with another item's text by a seeded permutation (the control)."""
    if text.matrix.shape[0] != n_items + 1:
        raise ConfigError(
            f"text vectors have {text.matrix.shape[0] - 1} items, the model {n_items}; "
            "embed this dataset's catalog"
        )
    rows = torch.from_numpy(np.array(text.matrix, dtype=np.float32))
    if config.shuffle_text:
        perm = 1 + np.random.default_rng(config.shuffle_seed).permutation(n_items)
        rows[1:] = rows[torch.from_numpy(perm)]
    return rows


def _batches(items: np.ndarray, size: int, steps: int, rng: np.random.Generator) -> Any:
    """`steps` batches of distinct items, walking seeded permutations of `items`."""
    size = min(size, len(items))
    order = rng.permutation(items)
    at = 0
    for _ in range(steps):
        if at + size > len(order):
            order, at = rng.permutation(items), 0
        yield torch.from_numpy(order[at : at + size])
        at += size


def align_table(
    item_emb: nn.Embedding, text: torch.Tensor, warm: np.ndarray, config: AlignConfig, seed: int
) -> dict[str, float]:
    """Stage 1: pull the rows of `warm` items toward their projected text (in place).
    Returns the InfoNCE loss of the first and last steps and the mean cosine of matched
    (row, projected text) pairs against mismatched ones at the end."""
    if len(warm) < 2:
        raise ConfigError("text alignment needs two or more items with training interactions")
    device = item_emb.weight.device
    torch.manual_seed(seed)
    projection = Projection(text.shape[1], item_emb.embedding_dim).to(device)
    optimizer = torch.optim.Adam([*projection.parameters(), item_emb.weight], lr=config.lr)
    log_scale = math.log(1 / config.temperature)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    text = text.to(device)
    for batch in _batches(warm, config.batch_size, config.steps, rng):
        batch = batch.to(device)
        loss = info_nce(projection(text[batch]), item_emb(batch), log_scale, symmetric=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        item_emb.weight[0].zero_()
        matched, mismatched = pair_cosines(item_emb.weight, projection, text, warm)
    return {
        "stage1_loss_first": losses[0] if losses else float("nan"),
        "stage1_loss_last": float(np.mean(losses[-10:])) if losses else float("nan"),
        "stage1_matched_cosine": matched,
        "stage1_mismatched_cosine": mismatched,
    }


@torch.no_grad()
def pair_cosines(
    table: torch.Tensor, projection: nn.Module, text: torch.Tensor, items: np.ndarray
) -> tuple[float, float]:
    """Mean cosine of each item's row with its own projected text, and with the projected
    text of the item next to it in `items` (a mismatched pair)."""
    idx = torch.from_numpy(np.asarray(items)).to(table.device)
    rows = F.normalize(table[idx], dim=-1)
    projected = F.normalize(projection(text[idx]), dim=-1)
    matched = (rows * projected).sum(-1).mean().item()
    mismatched = (rows * projected.roll(1, 0)).sum(-1).mean().item()
    return matched, mismatched


@dataclass
class TextProjection:
    """Text vector -> item row: the projection's direction, scaled to `norm`."""

    projection: Projection
    norm: float
    temperature: float
    source: str  # fingerprint of the embedder and template of the text vectors
    settings: tuple[str, str]  # the IndexConfig (embedder, template) that made them
    embedder: str
    shuffled: bool = False

    @torch.no_grad()
    def embed(self, text_rows: torch.Tensor) -> torch.Tensor:
        self.projection.eval()
        return F.normalize(self.projection(text_rows.float()), dim=-1) * self.norm

    def check(self, text: TextVectors) -> None:
        """`ArtifactError` unless `text` comes from the embedder and template it was fit on."""
        if text.source != self.source or text.dim != self.projection.in_dim:
            raise ArtifactError(
                f"the model's text projection was fit on {self.projection.in_dim}-d vectors of "
                f"{self.embedder} (embedder/template {self.source[:12]}), not on these "
                f"{text.dim}-d vectors of {text.embedder} ({text.source[:12]}); embed the items "
                "with the same embedder and template, or retrain with --align-text"
            )

    def to_payload(self) -> dict[str, Any]:
        return {
            "state_dict": {k: v.detach().cpu() for k, v in self.projection.state_dict().items()},
            "in_dim": self.projection.in_dim,
            "out_dim": self.projection.out_dim,
            "norm": self.norm,
            "temperature": self.temperature,
            "source": self.source,
            "settings": list(self.settings),
            "embedder": self.embedder,
            "shuffled": self.shuffled,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TextProjection:
        try:
            projection = Projection(int(payload["in_dim"]), int(payload["out_dim"]))
            projection.load_state_dict(payload["state_dict"])
            embedder, template = payload["settings"]
            return cls(
                projection.eval(),
                float(payload["norm"]),
                float(payload["temperature"]),
                str(payload["source"]),
                (str(embedder), str(template)),
                str(payload["embedder"]),
                bool(payload.get("shuffled", False)),
            )
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ArtifactError(f"the checkpoint's text projection is unreadable ({exc})") from exc


def _fit(
    table: torch.Tensor,
    text: torch.Tensor,
    items: np.ndarray,
    temperature: float,
    config: AlignConfig,
    seed: int,
) -> Projection:
    torch.manual_seed(seed)
    projection = Projection(text.shape[1], table.shape[1])
    optimizer = torch.optim.Adam(projection.parameters(), lr=config.lr)
    log_scale = math.log(1 / temperature)
    rng = np.random.default_rng(seed)
    for batch in _batches(items, config.batch_size, config.projection_steps, rng):
        loss = info_nce(projection(text[batch]), table[batch], log_scale, symmetric=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return projection.eval()


@torch.no_grad()
def percentile_found(
    table: torch.Tensor, projection: nn.Module, text: torch.Tensor, items: np.ndarray
) -> float:
    """How well the projected text of each of `items` finds that item's row among the rows
    of `items` (cosine): the mean share of the others it beats (1 = always first, 0.5 =
    chance)."""
    idx = torch.from_numpy(np.asarray(items))
    rows = F.normalize(table[idx], dim=-1)
    sims = F.normalize(projection(text[idx]), dim=-1) @ rows.T  # (n, n): text i vs row j
    own = sims.diagonal()[:, None]
    beaten = (sims < own).sum(1).float() + 0.5 * ((sims == own).sum(1).float() - 1)
    return (beaten / max(len(items) - 1, 1)).mean().item()


def fit_text_projection(
    table: torch.Tensor,
    text: torch.Tensor,
    warm: np.ndarray,
    config: AlignConfig,
    seed: int,
    vectors: TextVectors,
) -> tuple[TextProjection, dict[str, float]]:
    """Fit the projection on the frozen `table` (N + 1, D) from the paired `text` of the
    `warm` items; pick its temperature on held-out warm items (see the module docstring)."""
    table = table.detach().float().cpu()
    text = text.cpu()
    rng = np.random.default_rng(seed)
    order = rng.permutation(warm)
    n_held = min(max(2, round(config.holdout * len(warm))), len(warm) - 2)
    held, fit = order[:n_held], order[n_held:]
    found = {
        t: percentile_found(table, _fit(table, text, fit, t, config, seed), text, held)
        for t in config.temperatures
    }
    best = max(found, key=lambda t: (found[t], -t))
    projection = _fit(table, text, warm, best, config, seed)
    norm = float(table[torch.from_numpy(warm)].norm(dim=-1).median())
    stats = {f"heldout_found_t{t:g}": v for t, v in found.items()}
    stats["projection_temperature"] = best
    stats["projection_norm"] = norm
    result = TextProjection(
        projection,
        norm,
        best,
        vectors.source,
        vectors.settings,
        vectors.embedder,
        config.shuffle_text,
    )
    return result, stats


def fill_cold_rows(
    state: dict[str, torch.Tensor],
    projection: TextProjection,
    text: torch.Tensor,
    cold: np.ndarray,
    warm: np.ndarray,
) -> dict[str, torch.Tensor]:
    """A copy of `state` whose `cold` rows of the item table hold their projected text (and,
    with an output bias, the median bias of the `warm` items)."""
    out = dict(state)
    if len(cold) == 0:
        return out
    idx = torch.from_numpy(np.asarray(cold))
    table = state[TABLE].clone()
    table[idx] = projection.embed(text[idx]).to(table.dtype)
    out[TABLE] = table
    if BIAS in state:
        bias = state[BIAS].clone()
        bias[idx] = bias[torch.from_numpy(np.asarray(warm))].median()
        out[BIAS] = bias
    return out


def grow_catalog(
    payload: dict[str, Any], item_ids: list[str], text: TextVectors
) -> tuple[dict[str, Any], list[str]]:
    """`payload` re-indexed to the catalog `item_ids` (a superset of the trained items, in
    the catalog's order), items added after training embedded from `text` (that catalog's
    text vectors); and the ids of those added items."""
    projection = TextProjection.from_payload(payload[TEXT_PROJECTION])
    projection.check(text)
    if text.matrix.shape[0] != len(item_ids) + 1:
        raise ArtifactError("the text vectors do not cover the catalog; embed it again")
    old = {item_id: i + 1 for i, item_id in enumerate(payload["item_ids"])}
    state = payload["state_dict"]
    if state[TABLE].shape[0] != len(old) + 1:
        raise ArtifactError("only a model with one item-table row per item can grow its catalog")
    source = torch.tensor([old.get(i, 0) for i in item_ids], dtype=torch.long)
    known = source > 0
    added = [i for i, k in zip(item_ids, known.tolist(), strict=True) if not k]
    counts = payload["item_counts"]
    new_counts = torch.zeros(len(item_ids) + 1, dtype=counts.dtype)
    new_counts[1:][known] = counts[source[known]]
    table = torch.zeros(len(item_ids) + 1, state[TABLE].shape[1], dtype=state[TABLE].dtype)
    table[1:][known] = state[TABLE][source[known]]
    new_rows = 1 + torch.nonzero(~known).flatten()
    rows = torch.from_numpy(np.asarray(text.matrix[new_rows.numpy()], dtype=np.float32))
    table[new_rows] = projection.embed(rows).to(table.dtype)
    grown = dict(state)
    grown[TABLE] = table
    if BIAS in state:
        bias = torch.zeros(len(item_ids) + 1, dtype=state[BIAS].dtype)
        bias[1:][known] = state[BIAS][source[known]]
        bias[new_rows] = state[BIAS][source[known]].median()
        grown[BIAS] = bias
    out = dict(payload)
    out.update(item_ids=list(item_ids), item_counts=new_counts, state_dict=grown)
    return out, added


__all__ = [
    "ADDED",
    "NO_INTERACTIONS",
    "TEXT_PROJECTION",
    "TextProjection",
    "align_table",
    "fill_cold_rows",
    "fit_text_projection",
    "grow_catalog",
    "pair_cosines",
    "paired_text",
    "percentile_found",
]
