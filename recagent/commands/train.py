"""`recagent train ...`: train the classical models the agent calls as tools."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from recagent.commands.context import get_context
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig

app = typer.Typer(help="Train the models the agent uses as tools.", no_args_is_help=True)

MODEL = "Model"
TRAINING = "Training"
_MODEL_DEFAULTS = SASRecConfig()
_TRAIN_DEFAULTS = SASRecTrainConfig()


class LossName(StrEnum):
    bce = "bce"
    sampled_softmax = "sampled-softmax"
    full_ce = "full-ce"


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-') or 'options'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


@app.command("sasrec")
def sasrec_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset in the workspace \\[default: from settings].",
            show_default=False,
        ),
    ] = None,
    dim: Annotated[int, typer.Option(help="Embedding size.", rich_help_panel=MODEL)] = (
        _MODEL_DEFAULTS.dim
    ),
    layers: Annotated[int, typer.Option(help="Transformer blocks.", rich_help_panel=MODEL)] = (
        _MODEL_DEFAULTS.layers
    ),
    heads: Annotated[
        int, typer.Option(help="Attention heads (divide --dim).", rich_help_panel=MODEL)
    ] = _MODEL_DEFAULTS.heads,
    dropout: Annotated[float, typer.Option(rich_help_panel=MODEL)] = _MODEL_DEFAULTS.dropout,
    ff_mult: Annotated[
        int, typer.Option(help="Feed-forward width, in multiples of --dim.", rich_help_panel=MODEL)
    ] = _MODEL_DEFAULTS.ff_mult,
    max_len: Annotated[
        int, typer.Option(help="Longest history read.", rich_help_panel=MODEL)
    ] = _MODEL_DEFAULTS.max_len,
    loss: Annotated[
        LossName, typer.Option(help="Training objective.", rich_help_panel=MODEL)
    ] = LossName(_MODEL_DEFAULTS.loss),
    negatives: Annotated[
        int,
        typer.Option(help="Sampled negatives per batch (sampled-softmax).", rich_help_panel=MODEL),
    ] = _MODEL_DEFAULTS.negatives,
    epochs: Annotated[
        int, typer.Option(help="Most epochs.", rich_help_panel=TRAINING)
    ] = _TRAIN_DEFAULTS.epochs,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop after this many epochs without a better valid NDCG@10.",
            rich_help_panel=TRAINING,
        ),
    ] = _TRAIN_DEFAULTS.patience,
    lr: Annotated[
        float, typer.Option(help="Learning rate.", rich_help_panel=TRAINING)
    ] = _TRAIN_DEFAULTS.lr,
    weight_decay: Annotated[
        float, typer.Option(rich_help_panel=TRAINING)
    ] = _TRAIN_DEFAULTS.weight_decay,
    batch_size: Annotated[int, typer.Option(rich_help_panel=TRAINING)] = _TRAIN_DEFAULTS.batch_size,
    seed: Annotated[int, typer.Option(rich_help_panel=TRAINING)] = _TRAIN_DEFAULTS.seed,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.", rich_help_panel=TRAINING)
    ] = _TRAIN_DEFAULTS.device,
    lr_patience: Annotated[
        int | None,
        typer.Option(
            help="Halve the learning rate after this many epochs without a better valid "
            "NDCG@10 (0: keep it constant).",
            rich_help_panel=TRAINING,
        ),
    ] = _TRAIN_DEFAULTS.lr_patience,
    time_limit: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many minutes (keeps the best epoch so far).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace the saved model even if this run's best valid NDCG@10 is lower "
            "(default: keep whichever is better).",
        ),
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="If another process is training this model, exit (code 2) saying who, "
            "instead of waiting for it.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train SASRec on a prepared dataset; keep the epoch with the best valid NDCG@10.

    The checkpoint (with its config, item ids and data fingerprint) goes to
    <workspace>/models/<dataset>/sasrec.pt. The test split is not used. Ctrl-C stops and
    keeps the best epoch so far. A model already saved for the same data is replaced only if
    this run's best is at least as good (or with --replace); the run says which it kept.

    Example: recagent train sasrec --dataset ml-100k --epochs 100
    """
    app_ctx = get_context(ctx)
    try:
        config = SASRecConfig(
            dim=dim,
            layers=layers,
            heads=heads,
            dropout=dropout,
            ff_mult=ff_mult,
            max_len=max_len,
            loss=loss.value,
            negatives=negatives,
        )
        options = SASRecTrainConfig(
            epochs=epochs,
            patience=patience,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            seed=seed,
            device=device,
            lr_patience=lr_patience or None,
            time_limit_s=None if time_limit is None else time_limit * 60,
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid option: {_problems(exc)}") from exc
    from recagent.models.train import train_sasrec  # torch loads only when a command needs it

    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    result = train_sasrec(
        ds,
        config,
        options,
        app_ctx.workspace,
        app_ctx.reporter,
        replace=replace,
        wait=not no_wait,
    )
    if as_json:
        app_ctx.print_json(result.model_dump(mode="json"))
    else:
        table = Table(title=f"SASRec on {ds.name}", show_header=False)
        table.add_row("best epoch", f"{result.best_epoch} of {result.epochs_run}")
        table.add_row("stopped by", result.stopped.replace("_", " "))
        for name in ("NDCG@10", "HR@10", "MRR"):
            table.add_row(f"valid {name}", f"{result.valid[name]:.4f}")
        table.add_row("time", f"{result.seconds:.1f} s (best after {result.seconds_to_best:.1f} s)")
        table.add_row("checkpoint", str(result.checkpoint))
        app_ctx.out.print(table)
    kept = result.retention
    style = "yellow" if kept.kept == "old" else "green"
    prefix = "[yellow]interrupted:[/] " if result.stopped == "interrupted" else ""
    app_ctx.err.print(f"{prefix}[{style}]{escape(kept.reason)}[/]", soft_wrap=True)
    if result.stopped == "interrupted":
        raise typer.Exit(130)
