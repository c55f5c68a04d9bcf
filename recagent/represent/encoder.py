"""NoteLLM-lite: item text vectors refined so that items people consume together are close.

NoteLLM (WWW'24) compresses each item's text into one embedding and trains it contrastively
on pairs of items that people consume together, with an auxiliary category-generation loss:
L = (L_cl + a L_gen) / (1 + a). Nearly all of its gain over a plain sentence encoder came
from the co-occurrence training. This is that recipe on a CPU budget: the base embedder's
text vector (WordLlama by default, frozen) -> a small trainable projection (2-layer MLP,
starting as the identity) -> a unit vector; L_cl = symmetric in-batch InfoNCE over the item
pairs of the training split (recagent.data.pairs: window, ratings >= 4 where there are
ratings, 1/N_u per user, the top 1% of pair scores dropped, damped by the partner's total,
20 partners per item) with a learnable temperature; L_gen = a genre prediction head
(multi-label cross-entropy).

Early stopping and the choice of a (swept, a = 0 included) are on the valid split's held-out
pairs (recagent.represent.item_to_item), never on test. The checkpoint records the valid
Recall@50 of the raw text vectors too: the encoder's space is used for "more like this" only
when it won there (by 2% relative or more: a tie is no reason to switch spaces). It is
written under the rule every trained model follows (KeepBetter): a worse run never replaces
a better encoder of the same data.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.data.pairs import ItemPairs
from recagent.errors import ArtifactError
from recagent.index.embedders import Embedder, make_embedder
from recagent.manifest import Fingerprint
from recagent.models.retention import KeepBetter, Retention, ValidScore
from recagent.progress import Reporter, SilentReporter
from recagent.represent.contrastive import Projection, info_nce
from recagent.represent.encoder_config import EncoderConfig, checkpoint_path
from recagent.represent.item_to_item import (
    genre_matrix,
    heldout_pairs,
    recall_at,
    vector_scores,
    without,
)
from recagent.represent.text_vectors import embed_cached, text_key, text_vectors
from recagent.workspace import Workspace, atomic_path

MIN_GAIN = 0.02  # the encoder "won" when it beats the text vectors by 2% (relative) or more


class EncoderResult(BaseModel):
    """What `train_item_encoder` did."""

    dataset: str
    embedder: str
    pairs: int
    alpha: float
    metric: str = Field(description="The valid metric that chose (Recall@select_k).")
    valid: dict[str, float] = Field(description="That metric for raw text and the encoder.")
    sweep: dict[str, float] = Field(description="That metric per alpha.")
    best_epoch: int
    stopped: str = Field(
        description="early_stopping, max_epochs, time_limit or interrupted (Ctrl-C): the "
        "best evaluated epoch so far is what was kept"
    )
    won_on_valid: bool
    seconds: float
    retention: Retention
    path: str


class _Head(torch.nn.Module):
    """Projection + genre head + learnable log(1 / temperature)."""

    def __init__(
        self, dim: int, hidden: int, genres: int, temperature: float, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.projection = Projection(dim, dim, hidden, dropout)
        self.genre = torch.nn.Linear(dim, genres) if genres else None
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / temperature)))


def encode(projection: Projection, vectors: np.ndarray) -> np.ndarray:
    """Unit-length encoder vectors of text `vectors` (rows of zeros stay zero)."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        out = F.normalize(projection(x), dim=-1).numpy()
    out[~np.asarray(vectors).any(axis=1)] = 0.0
    return out


class ItemEncoder:
    """The trained encoder as an `Embedder`: base embedder -> projection -> unit vector. Its
    name changes with every trained encoder, so an index built with an older one is stale.
    The base vectors come through the workspace's per-text cache, so building its index
    re-embeds nothing the encoder was trained on."""

    def __init__(
        self,
        base: Embedder,
        projection: Projection,
        encoder_id: str,
        won_on_valid: bool,
        workspace: Workspace,
        select_k: int = 50,
    ) -> None:
        self.base = base
        self.select_k = select_k  # the valid Recall@k it was chosen by
        self.workspace = workspace
        self.projection = projection.eval()
        self.encoder_id = encoder_id
        self.won_on_valid = won_on_valid

    @property
    def name(self) -> str:
        return f"notellm-lite:{self.encoder_id}"

    @property
    def dim(self) -> int:
        return self.projection.out_dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return encode(self.projection, embed_cached(self.workspace, self.base, list(texts)))


def _fingerprint(dataset: Dataset, text: str) -> str:
    """The data an encoder was trained on: the interactions and the text vectors' key."""
    return Fingerprint().text(dataset.fingerprint).text(text).hexdigest()


@dataclass
class _Run:
    state: dict[str, torch.Tensor]
    valid: float  # -1 until an epoch was evaluated
    epoch: int
    stopped: str = "early_stopping"  # or max_epochs, time_limit, interrupted


def _train_one(
    alpha: float,
    x: torch.Tensor,
    pairs: torch.Tensor,
    genres: torch.Tensor,
    valid: Any,
    config: EncoderConfig,
    deadline: float,
    advance: Any,
) -> _Run:
    torch.manual_seed(config.seed)
    genre_count = genres.shape[1] if alpha > 0 else 0
    head = _Head(x.shape[1], config.hidden, genre_count, config.temperature, config.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    best = _Run({k: v.clone() for k, v in head.projection.state_dict().items()}, -1.0, 0)
    stale = 0
    try:
        for epoch in range(1, config.epochs + 1):
            head.train()
            order = torch.randperm(len(pairs), generator=gen)[: config.pairs_per_epoch]
            for start in range(0, len(order) - 1, config.batch_size):
                batch = pairs[order[start : start + config.batch_size]]
                if len(batch) < 2:
                    continue
                opt.zero_grad(set_to_none=True)
                _loss(head, x, batch, genres, alpha).backward()
                opt.step()
            advance(1)
            timed_out = time.monotonic() > deadline
            last = epoch == config.epochs or timed_out
            if epoch % config.eval_every and not last:
                continue
            head.eval()
            vectors = encode(head.projection, x.numpy())
            score = recall_at(vector_scores(vectors), valid, config.select_k)
            if score > best.valid:
                state = {k: v.clone() for k, v in head.projection.state_dict().items()}
                best, stale = _Run(state, score, epoch), 0
            else:
                stale += 1
            if timed_out:
                best.stopped = "time_limit"
                break
            if stale >= config.patience:
                break
        else:
            best.stopped = "max_epochs"
    except KeyboardInterrupt:
        best.stopped = "interrupted"  # the best evaluated epoch so far is kept
    return best


def _loss(
    head: _Head, x: torch.Tensor, batch: torch.Tensor, genres: torch.Tensor, alpha: float
) -> torch.Tensor:
    """(L_cl + alpha L_gen) / (1 + alpha) of one batch of pairs (B, 2)."""
    a, b = head.projection(x[batch[:, 0]]), head.projection(x[batch[:, 1]])
    loss = info_nce(a, b, head.log_scale, symmetric=True)
    if head.genre is None:
        return loss
    both = torch.cat([a, b])
    labels = genres[torch.cat([batch[:, 0], batch[:, 1]])]
    gen_loss = F.binary_cross_entropy_with_logits(head.genre(both), labels)
    return (loss + alpha * gen_loss) / (1 + alpha)


def train_item_encoder(
    workspace: Workspace,
    dataset: Dataset,
    index_config: IndexConfig,
    config: EncoderConfig | None = None,
    *,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
    replace: bool = False,
    time_limit_s: float | None = None,
    withhold: np.ndarray | None = None,
) -> EncoderResult:
    """Train the encoder on the training split's pairs, sweep alpha on valid, and save the
    best under KeepBetter (see the module docstring). `withhold`: item_idx whose pairs are
    left out of training and of the valid choice (the cold-item benchmark)."""
    config = config or EncoderConfig()
    report = reporter or SilentReporter()
    started = time.monotonic()
    deadline = started + (time_limit_s if time_limit_s else math.inf)
    embedder = embedder or make_embedder(index_config)
    vectors = text_vectors(workspace, dataset, index_config, embedder, report)
    item_pairs = ItemPairs.load_or_build(
        workspace, dataset, config.pairs, train_only=True, name="encoder-pairs"
    )
    coo = item_pairs.matrix.tocoo()
    edges = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    if withhold is not None:
        edges = edges[~np.isin(edges, withhold).any(axis=1)]
    pairs = torch.from_numpy(edges)
    if len(pairs) < 2:
        raise ArtifactError(
            f"{dataset.name} has {len(pairs)} item pairs in its training split; the item "
            "encoder needs people who consumed at least two items"
        )
    x = torch.from_numpy(vectors.matrix)
    genres = torch.from_numpy(genre_matrix(dataset).astype(np.float32))
    valid = heldout_pairs(dataset, "valid", config.valid_window)
    if withhold is not None:
        valid = without(valid, withhold)
    if not len(valid):
        raise ArtifactError(f"{dataset.name} has no valid cases to choose the encoder on")
    raw = recall_at(vector_scores(vectors.matrix), valid, config.select_k)
    alphas = config.alphas if genres.shape[1] else [0.0]
    runs: dict[float, _Run] = {}
    with report.stage(
        f"training the item encoder on {len(pairs):,} pairs", config.epochs * len(alphas)
    ) as advance:
        for alpha in alphas:
            runs[alpha] = _train_one(alpha, x, pairs, genres, valid, config, deadline, advance)
            if runs[alpha].stopped in ("interrupted", "time_limit"):
                break  # the alphas not tried yet are skipped; the best so far is kept
    runs = {a: r for a, r in runs.items() if r.valid >= 0}
    if not runs:
        raise KeyboardInterrupt  # stopped before any epoch was evaluated: nothing written
    alpha = max(runs, key=lambda a: (runs[a].valid, -a))
    best = runs[alpha]
    stopped = next(
        (r.stopped for r in runs.values() if r.stopped in ("interrupted", "time_limit")),
        best.stopped,
    )
    won = best.valid >= raw * (1 + MIN_GAIN) and best.valid > raw
    path = checkpoint_path(workspace, dataset)
    fingerprint = _fingerprint(dataset, vectors.key)
    metric = f"R@{config.select_k}"
    payload = {
        "fingerprint": fingerprint,
        "encoder_id": secrets.token_hex(6),
        "text_key": vectors.key,
        "embedder": vectors.embedder,
        "dims": [vectors.dim, config.hidden],
        "state": best.state,
        "config": config.model_dump(),
        "alpha": alpha,
        "won_on_valid": won,
        "raw_valid": raw,
        "training": {"best_epoch": best.epoch, "valid": {metric: best.valid}},
    }

    def write(target: Path) -> None:
        with atomic_path(target) as tmp:
            torch.save(payload, tmp)

    with KeepBetter(path, fingerprint, metric, replace=replace, reporter=report) as keep:
        keep.offer(ValidScore(metric=metric, value=best.valid, epoch=best.epoch), write)
    return EncoderResult(
        dataset=dataset.name,
        embedder=vectors.embedder,
        pairs=len(pairs),
        alpha=alpha,
        metric=metric,
        valid={"text": raw, "encoder": best.valid},
        sweep={str(a): r.valid for a, r in runs.items()},
        best_epoch=best.epoch,
        stopped=stopped,
        won_on_valid=won,
        seconds=time.monotonic() - started,
        retention=keep.outcome(),
        path=str(path),
    )


def load_item_encoder(
    workspace: Workspace,
    dataset: Dataset,
    index_config: IndexConfig,
    embedder: Embedder | None = None,
) -> ItemEncoder | None:
    """The trained encoder of `dataset` (None when there is none); `ArtifactError` when it
    was trained on other data or another embedder/template (retrain it)."""
    path = checkpoint_path(workspace, dataset)
    if not path.is_file():
        return None
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
        dim, hidden = (int(v) for v in payload["dims"])
        projection = Projection(dim, dim, hidden)
        projection.load_state_dict(payload["state"])
    except Exception as exc:
        raise ArtifactError(
            f"the item encoder at {path} is unreadable ({type(exc).__name__}); retrain it with "
            f"`recagent train item-encoder --dataset {dataset.name}`"
        ) from exc
    embedder = embedder or make_embedder(index_config)
    if payload["fingerprint"] != _fingerprint(dataset, text_key(dataset, index_config, embedder)):
        raise ArtifactError(
            f"the item encoder of {dataset.name!r} was trained on other data or another "
            f"embedder/template (it used {payload['embedder']}); retrain it with "
            f"`recagent train item-encoder --dataset {dataset.name}`"
        )
    won = bool(payload["won_on_valid"])
    select_k = int(payload.get("config", {}).get("select_k", 50))
    return ItemEncoder(embedder, projection, str(payload["encoder_id"]), won, workspace, select_k)


__all__ = [
    "EncoderResult",
    "ItemEncoder",
    "checkpoint_path",
    "encode",
    "load_item_encoder",
    "train_item_encoder",
]
