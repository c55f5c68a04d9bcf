"""Training SASRec on a prepared dataset's leave-one-out split.

`train_sasrec` trains on every user's training sequence (the valid and test targets held
out), scores the valid split after each epoch (NDCG@10, full ranking, history excluded),
keeps the best epoch's weights in `<workspace>/models/<dataset>/sasrec.pt` (rewritten
atomically whenever valid NDCG@10 improves) and stops after `patience` epochs without
improvement. The test split is never read here. Ctrl-C stops training and keeps the best
checkpoint so far.

`ensure_sasrec_scorer` is what the agent calls: the saved model if it is fresh, otherwise
train one (with a progress bar) and return it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError, ConfigError
from recagent.evals.fullrank import rank_cases
from recagent.evals.metrics import summarize
from recagent.models.checkpoint import checkpoint_path, load_sasrec_scorer, save_checkpoint
from recagent.models.sasrec import SASRec, left_pad
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from recagent.models.sasrec_scorer import SASRecScorer, resolve_device
from recagent.progress import Reporter, SilentReporter
from recagent.workspace import Workspace

Stopped = Literal["early_stopping", "max_epochs", "time_limit", "interrupted"]


class EpochLog(BaseModel):
    epoch: int
    lr: float = Field(description="Learning rate during this epoch.")
    loss: float
    valid_ndcg10: float
    seconds: float = Field(description="Wall time of this epoch, validation included.")


class TrainResult(BaseModel):
    dataset: str
    checkpoint: Path
    best_epoch: int
    epochs_run: int
    stopped: Stopped
    valid: dict[str, float] = Field(description="Valid metrics of the best epoch.")
    seconds: float
    seconds_to_best: float = Field(description="Wall time until the best epoch was validated.")
    history: list[EpochLog]


def training_windows(
    sequences: list[np.ndarray], max_len: int, windows: Literal["last", "all"]
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(inputs, targets, lengths): left-padded (W, max_len) item_idx windows where
    `targets[w, t]` is the item after `inputs[w, t]`. A long sequence gives one window ending
    at its last item, or (`all`) consecutive windows whose targets cover every item once."""
    rows = []
    for seq in sequences:
        ends = [len(seq)] if windows == "last" else range(len(seq), 1, -max_len)
        for end in ends:
            if end >= 2:
                rows.append(seq[max(0, end - max_len - 1) : end])
    inputs = left_pad([r[:-1] for r in rows], max_len)
    targets = left_pad([r[1:] for r in rows], max_len)
    lengths = np.array([len(r) - 1 for r in rows], dtype=np.int64)
    return inputs, targets, lengths


def length_batches(rng: np.random.Generator, lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """One epoch of batches, each of windows of similar length (less padding to compute).

    Windows are shuffled, sorted by length with random tie order, cut into batches, and the
    batches shuffled: every window once per epoch, in a new batch order each time."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _seed_everything(seed: int, device: torch.device) -> torch.Generator:
    """Seed torch's global generator (initial weights, dropout) and return a generator for
    negative sampling on `device`."""
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def _valid_metrics(model: SASRec, dataset: Dataset) -> dict[str, float]:
    """Full-ranking metrics of the model on the valid split (every valid history is
    non-empty, so the popularity prior of an empty history is never used)."""
    model.eval()
    item_ids = dataset.catalog.item_ids
    scorer = SASRecScorer(model, item_ids, np.zeros(len(item_ids) + 1))
    return summarize(rank_cases(scorer, dataset.split.cases("valid")))


def _train_epoch(
    model: SASRec,
    optimizer: torch.optim.Optimizer,
    windows: tuple[torch.Tensor, torch.Tensor, np.ndarray],
    batch_size: int,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> float:
    """One pass over the training windows; returns the mean batch loss."""
    inputs, targets, lengths = windows
    device = model.item_emb.weight.device
    model.train()
    losses = []
    for batch in length_batches(rng, lengths, batch_size):
        width = int(lengths[batch].max())  # left-padded: the last `width` columns hold data
        rows = torch.as_tensor(batch)
        loss = model.loss(
            inputs[rows, -width:].to(device), targets[rows, -width:].to(device), generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def _cpu_state(model: SASRec) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class _Best:
    """The best epoch so far and whether its checkpoint is on disk."""

    epoch: int = 0
    ndcg: float = -1.0
    valid: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    at: float = 0.0
    saved: bool = True


def train_sasrec(
    dataset: Dataset,
    config: SASRecConfig | None = None,
    options: SASRecTrainConfig | None = None,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Train SASRec on `dataset` and save the best epoch (by valid NDCG@10).

    The checkpoint goes to `checkpoint`, else `workspace.models_dir(dataset)/sasrec.pt`.
    Returns how training went; load the model with `load_sasrec_scorer`. `ConfigError` if the
    dataset has nothing to train or validate on."""
    config = config or SASRecConfig()
    options = options or SASRecTrainConfig()
    reporter = reporter or SilentReporter()
    if checkpoint is None:
        if workspace is None:
            raise ValueError("pass a workspace or a checkpoint path")
        checkpoint = checkpoint_path(workspace, dataset.name)
    device = resolve_device(options.device)
    if len(dataset.split.eval_users) == 0:
        raise ConfigError(
            f"dataset {dataset.name!r} has no user with 3+ interactions: nothing to validate on"
        )
    train_seqs = dataset.split.train_sequences()
    windows = training_windows(train_seqs, config.max_len, options.windows)
    if int((windows[1] > 0).sum()) == 0:
        raise ConfigError(f"dataset {dataset.name!r} has no training sequence of 2+ items")
    counts = np.bincount(np.concatenate(train_seqs), minlength=dataset.n_items + 1)

    generator = _seed_everything(options.seed, device)
    rng = np.random.default_rng(options.seed)
    model = SASRec(dataset.n_items, config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, betas=(0.9, 0.98), weight_decay=options.weight_decay
    )
    history: list[EpochLog] = []
    best = _Best()
    stopped: Stopped = "max_epochs"
    started = time.perf_counter()

    def save_best() -> None:
        assert best.state is not None
        training = {
            "best_epoch": best.epoch,
            "valid": best.valid,
            "seconds_to_best": round(best.at, 2),
            "options": options.model_dump(),
        }
        save_checkpoint(checkpoint, config, best.state, dataset, counts, training)
        best.saved = True

    try:
        with reporter.stage(f"training SASRec on {dataset.name}", total=options.epochs) as adv:
            for epoch in range(1, options.epochs + 1):
                epoch_start = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                loss = _train_epoch(model, optimizer, windows, options.batch_size, rng, generator)
                valid = _valid_metrics(model, dataset)
                ndcg = valid["NDCG@10"]
                if ndcg > best.ndcg:
                    at = time.perf_counter() - started
                    best = _Best(epoch, ndcg, valid, _cpu_state(model), at, saved=False)
                    save_best()
                seconds = time.perf_counter() - epoch_start
                history.append(
                    EpochLog(epoch=epoch, lr=lr, loss=loss, valid_ndcg10=ndcg, seconds=seconds)
                )
                adv(
                    1,
                    loss=f"{loss:.4f}",
                    ndcg10=f"{ndcg:.4f}",
                    best=f"{best.ndcg:.4f}@{best.epoch}",
                )
                stale = epoch - best.epoch
                if stale >= options.patience:
                    stopped = "early_stopping"
                    break
                if options.time_limit_s and time.perf_counter() - started > options.time_limit_s:
                    stopped = "time_limit"
                    break
                if options.lr_patience and stale and stale % options.lr_patience == 0:
                    for group in optimizer.param_groups:
                        group["lr"] *= 0.5
    except KeyboardInterrupt:
        stopped = "interrupted"
        if best.state is not None and not best.saved:
            save_best()  # the interrupt hit while saving: write the best state again
    if best.state is None:
        raise KeyboardInterrupt  # stopped before the first epoch ended: nothing to keep
    return TrainResult(
        dataset=dataset.name,
        checkpoint=checkpoint,
        best_epoch=best.epoch,
        epochs_run=len(history),
        stopped=stopped,
        valid=best.valid,
        seconds=time.perf_counter() - started,
        seconds_to_best=best.at,
        history=history,
    )


def ensure_sasrec_scorer(
    workspace: Workspace,
    dataset: Dataset,
    reporter: Reporter | None = None,
    config: SASRecConfig | None = None,
    options: SASRecTrainConfig | None = None,
    notes: list[str] | None = None,
) -> SASRecScorer:
    """The saved SASRec for `dataset` if it matches the prepared data; otherwise (missing or
    stale) train one first, reporting progress, and return that. A training cut short by
    `options.time_limit_s` adds a line to `notes` saying how to finish it."""
    try:
        return load_sasrec_scorer(workspace, dataset)
    except ArtifactError:
        pass
    options = options or SASRecTrainConfig()
    result = train_sasrec(dataset, config, options, workspace, reporter)
    if result.stopped == "time_limit" and notes is not None:
        notes.append(
            f"SASRec trained for {result.seconds:.0f} s only (best epoch {result.best_epoch}, "
            f"valid NDCG@10 {result.valid.get('NDCG@10', 0.0):.4f}) to start quickly; "
            f"`recagent train sasrec --dataset {dataset.name}` trains it to convergence"
        )
    return load_sasrec_scorer(workspace, dataset, options.device)


__all__ = [
    "EpochLog",
    "SASRecTrainConfig",
    "TrainResult",
    "ensure_sasrec_scorer",
    "train_sasrec",
    "training_windows",
]
