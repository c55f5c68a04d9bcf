"""Training any registered model on a prepared dataset's leave-one-out split.

`train_model` trains on every user's training sequence (the valid and test targets held
out), scores the valid split after each epoch (full ranking, history excluded; on a fixed
seeded sample of users when there are more than `valid_users`), keeps the best epoch's
weights in `<workspace>/models/<dataset>/<model>.pt` (rewritten atomically whenever the valid
metric improves) and stops after `patience` epochs without improvement. The test split is
never read here. Ctrl-C stops training and keeps the best checkpoint so far. With text
alignment (`TrainConfig.align_text`, SASRec) the item table is aligned with the item text
before the first epoch, and the text projection is fitted once, when training ends, and
written into the best epoch's checkpoint (`recagent.models.align`). A time limit
stops within one batch of it (the epoch it cuts short is validated and counts like any
other). Under torchrun it trains data-parallel (`recagent.models.distributed`).

A checkpoint already saved for the same data is replaced only by a run whose best valid
metric is at least as good, or when `replace=True` (`recagent.models.retention`); the run
holds the model's build lock throughout.

What differs between models is in their `ModelSpec` (`recagent.models.registry`): the
network, its training data and batches (`batch_loss`), and its scorer. `ensure_scorer` is
what the agent calls: the saved model if it is fresh, otherwise train one (with a progress
bar) and return it.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError, ConfigError
from recagent.metrics import summarize
from recagent.models import distributed, leaderboard
from recagent.models.align import (
    TABLE,
    align_table,
    fill_cold_rows,
    fit_text_projection,
    paired_text,
)
from recagent.models.base import Scorer
from recagent.models.checkpoint import checkpoint_path, load_scorer, save_checkpoint
from recagent.models.evaluation import rank_cases
from recagent.models.loop import (
    Best,
    LossModule,
    NoLock,
    cpu_state,
    resolver,
    train_epoch,
    valid_cases,
    validate_keys,
)
from recagent.models.recipe import param_groups
from recagent.models.registry import ModelSpec, spec
from recagent.models.retention import KeepBetter, Retention, ValidScore, model_lock
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from recagent.models.sasrec_scorer import SASRecScorer, resolve_device
from recagent.models.train_config import TrainConfig
from recagent.models.windows import length_batches, training_windows
from recagent.progress import Reporter, SilentReporter
from recagent.represent.text_vectors import TextVectors
from recagent.workspace import Workspace

log = logging.getLogger(__name__)
Stopped = Literal["early_stopping", "max_epochs", "time_limit", "interrupted"]


class EpochLog(BaseModel):
    epoch: int
    lr: float = Field(description="Learning rate during this epoch.")
    loss: float
    valid_ndcg10: float
    valid_metric: float | None = Field(None, description="The valid metric that selects.")
    seconds: float = Field(description="Wall time of this epoch, validation included.")
    complete: bool = Field(True, description="False for an epoch the time limit cut short.")


class TrainResult(BaseModel):
    model: str = "sasrec"
    dataset: str
    checkpoint: Path
    best_epoch: int
    epochs_run: int
    stopped: Stopped
    metric: str = "NDCG@10"
    valid: dict[str, float] = Field(description="Valid metrics of the best epoch.")
    valid_users: int = Field(0, description="Users the valid metrics are over.")
    seconds: float
    seconds_to_best: float = Field(description="Wall time until the best epoch was validated.")
    history: list[EpochLog]
    retention: Retention = Field(description="Which checkpoint is in place now, and why.")
    processes: int = Field(1, description="Data-parallel processes (torchrun).")
    notes: list[str] = Field(default_factory=list, description="What the run wants said.")
    alignment: dict[str, float] = Field(
        default_factory=dict,
        description="Text alignment: stage 1 losses and cosines, the projection's temperature "
        "and how well it found held-out items (empty without --align-text).",
    )


LONG_RUN_S = 600.0  # what a person expects a training command to take, at most


def expected_time(title: str, epoch_s: float, options: TrainConfig) -> str | None:
    """What to say after the first epoch when the run may take longer than `LONG_RUN_S`
    (None otherwise): how long an epoch takes, the stopping rule, the worst case, and how to
    cap it. Training has no way to know its best epoch ahead; the worst case is honest."""
    if options.time_limit_s is not None:
        return None
    worst = epoch_s * options.epochs
    if worst <= LONG_RUN_S:
        return None
    return (
        f"{title}: an epoch takes {epoch_s:.0f} s here; training stops after "
        f"{options.patience} epochs without a better valid {options.metric}, or after "
        f"{options.epochs} epochs (~{worst / 60:.0f} min); cap it with --time-limit MINUTES "
        "(the best epoch so far is kept; Ctrl-C also keeps it)"
    )


def train_model(
    name: str,
    dataset: Dataset,
    config: BaseModel | None = None,
    options: TrainConfig | None = None,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    checkpoint: Path | None = None,
    *,
    replace: bool = False,
    wait: bool = True,
    text: TextVectors | None = None,
) -> TrainResult:
    """Train model `name` on `dataset` and save the best epoch (by `options.metric` on
    valid). With `options.align_text.enabled`, align the item table with `text` (the
    catalog's text vectors) first and keep the text projection (`recagent.models.align`).

    The checkpoint goes to `checkpoint`, else `workspace.models_dir(dataset)/<name>.pt`; one
    already there for the same data is replaced only by a better run, or with `replace`.
    Another run training it: wait for it, or (`wait=False`) `LockedError`. Returns how
    training went and which checkpoint was kept; load the model with `load_scorer`.
    `ConfigError` if the dataset has nothing to train or validate on."""
    model_spec = spec(name)
    config = config or model_spec.config_type()
    options = options or model_spec.train_type()
    reporter = reporter or SilentReporter()
    if checkpoint is None:
        if workspace is None:
            raise ValueError("pass a workspace or a checkpoint path")
        checkpoint = checkpoint_path(workspace, dataset.name, name)
    group, device = distributed.join(resolve_device(options.device))
    if len(dataset.split.eval_users) == 0:
        raise ConfigError(
            f"dataset {dataset.name!r} has no user with 3+ interactions: nothing to validate on"
        )
    resolve = resolver(workspace, dataset, options.device)
    data = model_spec.data(dataset, config, options, resolve)
    if len(data) == 0:
        raise ConfigError(f"dataset {dataset.name!r} has no training sequence of 2+ items")
    for note in getattr(data, "notes", []):
        log.warning("%s", note)
    train_seqs = dataset.split.train_sequences()
    counts = np.bincount(np.concatenate(train_seqs), minlength=dataset.n_items + 1)
    cases = valid_cases(dataset, options.valid_users)

    torch.manual_seed(options.seed)  # initial weights and dropout, the same on every process
    generator = torch.Generator(device=device).manual_seed(options.seed + group.rank)
    rng = np.random.default_rng(options.seed)
    model = model_spec.build(dataset.n_items, config).to(device)
    align = options.align_text
    warm = np.flatnonzero(counts[1:]) + 1
    cold = np.flatnonzero(counts[1:] == 0) + 1
    text_rows = None
    alignment: dict[str, float] = {}
    if align.enabled:
        if name != "sasrec":
            raise ConfigError(f"text alignment is implemented for SASRec only, not {name}")
        if text is None:
            raise ConfigError("text alignment needs the catalog's text vectors (text=...)")
        text_rows = paired_text(text, dataset.n_items, align)
        alignment.update(align_table(model.item_emb, text_rows, warm, align, options.seed))
    loss_module = distributed.wrap(LossModule(model), group, device)
    optimizer = torch.optim.AdamW(
        param_groups(model, options.weight_decay), lr=options.lr, betas=(0.9, 0.98)
    )
    metric = options.metric
    progress_key = re.sub(r"[^a-z0-9]", "", metric.lower())  # NDCG@10 -> ndcg10, as it prints
    history: list[EpochLog] = []
    best = Best()
    stopped: Stopped = "max_epochs"
    started = time.perf_counter()
    deadline = started + options.time_limit_s if options.time_limit_s else float("inf")
    validation_s = 0.0  # how long validating takes, kept free at the end of a time limit

    def validate() -> dict[str, float]:
        model.eval()
        scorer = model_spec.scorer(model, dataset.catalog.item_ids, counts, config, resolve)
        return summarize(rank_cases(scorer, cases))

    def write_best(path: Path, final: bool = False) -> None:
        """The best epoch's checkpoint; `final` (once, when training ends): a text-aligned
        model's with its text projection fitted and the cold items' rows filled in."""
        assert best.state is not None
        training = {
            "best_epoch": best.epoch,
            "valid": best.valid,
            "valid_users": len(cases),
            "seconds_to_best": round(best.at, 2),
            "processes": group.world,
            "options": options.model_dump(),
        }
        state, projection = best.state, None
        if final and text_rows is not None:
            assert text is not None
            fit_start = time.perf_counter()
            fitted, stats = fit_text_projection(
                state[TABLE], text_rows, warm, align, options.seed, text
            )
            state = fill_cold_rows(state, fitted, text_rows, cold, warm)
            alignment.update(stats, cold_items=float(len(cold)))
            alignment["projection_seconds"] = time.perf_counter() - fit_start
            training["alignment"] = dict(alignment)
            projection = fitted.to_payload()
        save_checkpoint(path, config, state, dataset, counts, training, name, projection)

    def offer_best() -> None:
        if group.main:
            keeper.offer(ValidScore(metric=metric, value=best.value, epoch=best.epoch), write_best)
        best.saved = True

    keeper = KeepBetter(
        checkpoint, dataset.fingerprint, metric, replace=replace, wait=wait, reporter=reporter
    )
    title = f"training {model_spec.title} on {dataset.name}"
    if group.active:
        title += f" (process {group.rank + 1} of {group.world})"
    with keeper if group.main else NoLock():
        try:
            with reporter.stage(title, total=options.epochs) as adv:
                for epoch in range(1, options.epochs + 1):
                    epoch_start = time.perf_counter()
                    lr = optimizer.param_groups[0]["lr"]
                    loss, complete = train_epoch(
                        loss_module,
                        optimizer,
                        data,
                        options.batch_size,
                        rng,
                        generator,
                        device,
                        group,
                        deadline - validation_s,
                    )
                    valid_start = time.perf_counter()
                    valid = validate() if group.main else {}
                    if group.active:
                        keys = sorted(validate_keys(valid, metric))
                        values = group.broadcast([valid.get(k, 0.0) for k in keys])
                        valid = dict(zip(keys, values, strict=True))
                    validation_s = time.perf_counter() - valid_start
                    value = valid[metric]
                    if value > best.value:
                        at = time.perf_counter() - started
                        best = Best(epoch, value, valid, cpu_state(model), at, saved=False)
                        offer_best()
                    seconds = time.perf_counter() - epoch_start
                    history.append(
                        EpochLog(
                            epoch=epoch,
                            lr=lr,
                            loss=loss,
                            valid_ndcg10=valid["NDCG@10"],
                            valid_metric=value,
                            seconds=seconds,
                            complete=complete,
                        )
                    )
                    log.info(
                        "epoch %d: loss %.4f, valid %s %.4f (best %.4f at epoch %d)",
                        epoch,
                        loss,
                        metric,
                        value,
                        best.value,
                        best.epoch,
                    )
                    adv(
                        1,
                        loss=f"{loss:.4f}",
                        **{progress_key: f"{value:.4f}"},
                        best=f"{best.value:.4f}@{best.epoch}",
                    )
                    if epoch == 1 and group.main:
                        expect = expected_time(model_spec.title, seconds, options)
                        if expect:
                            log.warning("%s", expect)
                    stale = epoch - best.epoch
                    if stale >= options.patience:
                        stopped = "early_stopping"
                        break
                    late = not complete or time.perf_counter() >= deadline - validation_s
                    if group.broadcast([float(late)])[0]:
                        stopped = "time_limit"
                        break
                    if options.lr_patience and stale and stale % options.lr_patience == 0:
                        for param_group in optimizer.param_groups:
                            param_group["lr"] *= 0.5
        except KeyboardInterrupt:
            stopped = "interrupted"
            if best.state is not None and not best.saved:
                offer_best()  # the interrupt hit while saving: offer the best state again
        written = keeper.written
        if group.main and text_rows is not None and written and written.epoch == best.epoch:
            write_best(checkpoint, final=True)  # the same epoch, now with its text projection
        retention = keeper.outcome()
    if best.state is None:
        raise KeyboardInterrupt  # stopped before the first epoch ended: nothing written
    in_workspace = workspace is not None and checkpoint == checkpoint_path(
        workspace, dataset.name, name
    )
    if group.main and in_workspace and retention.kept == "new":
        assert workspace is not None
        leaderboard.record(
            workspace, dataset.name, dataset.fingerprint, name, "valid", best.valid, len(cases)
        )
    seconds = time.perf_counter() - started
    log.info(
        "%s on %s: stopped by %s after %d epochs and %.1f s; %s",
        model_spec.title,
        dataset.name,
        stopped.replace("_", " "),
        len(history),
        seconds,
        retention.reason,
    )
    return TrainResult(
        model=name,
        dataset=dataset.name,
        checkpoint=checkpoint,
        best_epoch=best.epoch,
        epochs_run=len(history),
        stopped=stopped,
        metric=metric,
        valid=best.valid,
        valid_users=len(cases),
        seconds=seconds,
        seconds_to_best=best.at,
        history=history,
        retention=retention,
        processes=group.world,
        notes=list(getattr(data, "notes", [])),
        alignment=alignment,
    )


def train_sasrec(
    dataset: Dataset,
    config: SASRecConfig | None = None,
    options: SASRecTrainConfig | None = None,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    checkpoint: Path | None = None,
    *,
    replace: bool = False,
    wait: bool = True,
    text: TextVectors | None = None,
) -> TrainResult:
    """`train_model("sasrec", ...)`."""
    return train_model(
        "sasrec",
        dataset,
        config,
        options,
        workspace,
        reporter,
        checkpoint,
        replace=replace,
        wait=wait,
        text=text,
    )


def ensure_scorer(
    workspace: Workspace,
    dataset: Dataset,
    name: str = "sasrec",
    reporter: Reporter | None = None,
    config: BaseModel | None = None,
    options: TrainConfig | None = None,
    notes: list[str] | None = None,
) -> Scorer:
    """The saved model `name` for `dataset` if it matches the prepared data; otherwise
    (missing or stale) train one first, reporting progress, and return that. A training cut
    short by `options.time_limit_s` adds a line to `notes` saying how to finish it."""
    device = options.device if options else "cpu"
    try:
        return load_scorer(workspace, dataset, name, device)
    except ArtifactError:
        pass
    with model_lock(checkpoint_path(workspace, dataset.name, name), reporter=reporter):
        try:  # another process may have trained it while this one waited for the lock
            return load_scorer(workspace, dataset, name, device)
        except ArtifactError:
            pass
        result = train_model(name, dataset, config, options, workspace, reporter)
    if result.stopped == "time_limit" and notes is not None:
        notes.append(
            f"{spec(name).title} trained for {result.seconds:.0f} s only (best epoch "
            f"{result.best_epoch}, valid NDCG@10 {result.valid.get('NDCG@10', 0.0):.4f}) to "
            f"start quickly; `recagent train {name} --dataset {dataset.name}` trains it to "
            "convergence"
        )
    return load_scorer(workspace, dataset, name, device)


def ensure_sasrec_scorer(
    workspace: Workspace,
    dataset: Dataset,
    reporter: Reporter | None = None,
    config: SASRecConfig | None = None,
    options: SASRecTrainConfig | None = None,
    notes: list[str] | None = None,
) -> SASRecScorer:
    """`ensure_scorer` for SASRec."""
    scorer = ensure_scorer(workspace, dataset, "sasrec", reporter, config, options, notes)
    assert isinstance(scorer, SASRecScorer)
    return scorer


__all__ = [
    "EpochLog",
    "ModelSpec",
    "SASRecTrainConfig",
    "TrainConfig",
    "TrainResult",
    "ensure_sasrec_scorer",
    "ensure_scorer",
    "expected_time",
    "length_batches",
    "train_model",
    "train_sasrec",
    "training_windows",
    "valid_cases",
]
