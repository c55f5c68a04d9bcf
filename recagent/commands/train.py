"""`recagent train <model>`: train the classical models the agent calls as tools.

One command per registered model (sasrec, lrurec, hstu, bert4rec, bst), all with the same training
options, a `--preset` and `--set KEY=VALUE` for any model setting; SASRec keeps its own flags
too. `train fusion` fits the fusion of the trained models on the valid split; `train
popularity` only measures it (there is nothing to learn). Under `torchrun --nproc-per-node N
-m recagent train <model> ...` the processes train data-parallel; only the first prints and
writes the checkpoint.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from recagent.commands.context import AppContext, DatasetOpt, get_context
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.models.registry import MODELS
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from recagent.progress import Reporter, SilentReporter

app = typer.Typer(help="Train the models the agent uses as tools.", no_args_is_help=True)

MODEL = "Model"
TRAINING = "Training"
TEXT = "Text alignment (CTRL-lite, SASRec only)"
_MODEL_DEFAULTS = SASRecConfig()
_TRAIN_DEFAULTS = SASRecTrainConfig()


class LossName(StrEnum):
    bce = "bce"
    sampled_softmax = "sampled-softmax"
    full_ce = "full-ce"


PresetOpt = Annotated[
    str | None, typer.Option(help="Start from a named model preset.", rich_help_panel=MODEL)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Any model or training setting (repeatable), e.g. --set dropout=0.5 "
        "--set mlp=[256,128].",
        rich_help_panel=MODEL,
    ),
]
# the training options every model's command takes (`train sasrec` shows its defaults,
# the other models default to None: their own config's value)
EpochsOpt = Annotated[int | None, typer.Option(help="Most epochs.", rich_help_panel=TRAINING)]
LrOpt = Annotated[float | None, typer.Option(help="Learning rate.", rich_help_panel=TRAINING)]
WeightDecayOpt = Annotated[float | None, typer.Option(rich_help_panel=TRAINING)]
BatchSizeOpt = Annotated[int | None, typer.Option(rich_help_panel=TRAINING)]
SeedOpt = Annotated[int | None, typer.Option(rich_help_panel=TRAINING)]
DeviceOpt = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:N, mps or auto.", rich_help_panel=TRAINING)
]
TimeLimitOpt = Annotated[
    float | None,
    typer.Option(
        help="Stop after this many minutes (keeps the best epoch so far).",
        rich_help_panel=TRAINING,
    ),
]
MetricOpt = Annotated[
    str | None,
    typer.Option(help="Valid metric that picks the best epoch.", rich_help_panel=TRAINING),
]
ValidUsersOpt = Annotated[
    int | None,
    typer.Option(
        help="Validate on a fixed sample of this many users when there are more.",
        rich_help_panel=TRAINING,
    ),
]
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace the saved model even if this run's best valid metric is lower "
        "(default: keep whichever is better).",
    ),
]
NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="If another process is training this model, exit (code 2) saying who, "
        "instead of waiting for it.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-') or 'options'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def _parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value that reads as JSON (numbers, true, [1,2]) is decoded."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            out[key.replace("-", "_")] = value
    return out


def _given(ctx: typer.Context, names: list[str]) -> dict[str, Any]:
    """The options among `names` that were given on the command line (not defaults)."""
    out = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            out[name] = ctx.params[name]
    return out


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _run(
    ctx: typer.Context,
    name: str,
    dataset: str | None,
    preset: str | None,
    values: dict[str, Any],
    replace: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Validate the settings, train, print the outcome (first process only)."""
    from recagent.models.registry import spec

    app_ctx = get_context(ctx)
    model_spec = spec(name)
    model_values = {k: v for k, v in values.items() if k in model_spec.config_type.model_fields}
    train_values = {k: v for k, v in values.items() if k not in model_values}
    if "time_limit" in train_values:
        minutes = train_values.pop("time_limit")
        train_values["time_limit_s"] = None if minutes is None else minutes * 60
    if train_values.get("lr_patience") == 0:
        train_values["lr_patience"] = None
    try:
        config = model_spec.config(preset, **model_values)
        options = model_spec.train_type(**train_values)
    except ValidationError as exc:
        raise ConfigError(f"invalid option: {_problems(exc)}") from exc
    from recagent.models.train import train_model  # torch loads only when a command needs it

    main = _is_main_process()
    reporter: Reporter = app_ctx.reporter if main else SilentReporter()
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    text = None
    if options.align_text.enabled:
        from recagent.represent.text_vectors import text_vectors

        text = text_vectors(app_ctx.workspace, ds, app_ctx.settings.index, reporter=reporter)
    result = train_model(
        name,
        ds,
        config,
        options,
        app_ctx.workspace,
        reporter,
        replace=replace,
        wait=not no_wait,
        text=text,
    )
    if not main:
        return
    _report(app_ctx, result, model_spec.title, as_json)


def _report(app_ctx: AppContext, result: Any, title: str, as_json: bool) -> None:
    if as_json:
        app_ctx.print_json(result.model_dump(mode="json"))
    else:
        table = Table(title=f"{title} on {result.dataset}", show_header=False)
        table.add_row("best epoch", f"{result.best_epoch} of {result.epochs_run}")
        table.add_row("stopped by", result.stopped.replace("_", " "))
        for metric in ("NDCG@10", "HR@10", "MRR"):
            table.add_row(f"valid {metric}", f"{result.valid[metric]:.4f}")
        table.add_row("valid users", f"{result.valid_users:,}")
        table.add_row("time", f"{result.seconds:.1f} s (best after {result.seconds_to_best:.1f} s)")
        if result.processes > 1:
            table.add_row("processes", str(result.processes))
        found_at = [v for k, v in result.alignment.items() if k.startswith("heldout_found")]
        if found_at:  # (none when the saved model was better and kept: no projection fitted)
            found = max(found_at)
            table.add_row(
                "text projection",
                f"temperature {result.alignment['projection_temperature']:g}, finds held-out "
                f"items from their text at percentile {found:.3f} (chance 0.5)",
            )
        table.add_row("checkpoint", str(result.checkpoint))
        app_ctx.out.print(table)
    for note in result.notes:
        app_ctx.err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    kept = result.retention
    style = "yellow" if kept.kept == "old" else "green"
    prefix = "[yellow]interrupted:[/] " if result.stopped == "interrupted" else ""
    app_ctx.err.print(f"{prefix}[{style}]{escape(kept.reason)}[/]", soft_wrap=True)
    if result.stopped == "interrupted":
        raise typer.Exit(130)


_MODEL_FLAGS = ["dim", "layers", "heads", "dropout", "ff_mult", "max_len", "loss", "negatives"]
_TRAIN_FLAGS = [
    "epochs",
    "patience",
    "lr",
    "weight_decay",
    "batch_size",
    "seed",
    "device",
    "lr_patience",
    "time_limit",
    "metric",
    "valid_users",
    "window_step",
]


@app.command("sasrec")
def sasrec_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
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
    preset: PresetOpt = None,
    sets: SetOpt = None,
    epochs: EpochsOpt = _TRAIN_DEFAULTS.epochs,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop after this many epochs without a better valid metric.",
            rich_help_panel=TRAINING,
        ),
    ] = _TRAIN_DEFAULTS.patience,
    lr: LrOpt = _TRAIN_DEFAULTS.lr,
    weight_decay: WeightDecayOpt = _TRAIN_DEFAULTS.weight_decay,
    batch_size: BatchSizeOpt = _TRAIN_DEFAULTS.batch_size,
    seed: SeedOpt = _TRAIN_DEFAULTS.seed,
    device: DeviceOpt = _TRAIN_DEFAULTS.device,
    lr_patience: Annotated[
        int | None,
        typer.Option(
            help="Halve the learning rate after this many epochs without a better valid "
            "metric (0: keep it constant).",
            rich_help_panel=TRAINING,
        ),
    ] = _TRAIN_DEFAULTS.lr_patience,
    time_limit: TimeLimitOpt = None,
    metric: MetricOpt = _TRAIN_DEFAULTS.metric,
    valid_users: ValidUsersOpt = _TRAIN_DEFAULTS.valid_users,
    window_step: Annotated[
        int | None,
        typer.Option(
            help="Items between a long history's windows (default: max_len).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    align_text: Annotated[
        bool,
        typer.Option(
            "--align-text/--no-align-text",
            help="First align the item embeddings with the items' text (the index's embedder "
            "and template), then train as usual, and keep a text projection: items with no "
            "training interactions, or added to the catalog later, are scored from their text. "
            "On by default: it won on valid on ML-100k and ml-latest-small "
            "(benchmarks/RESULTS.md, 'The aligned SASRec decided').",
            rich_help_panel=TEXT,
        ),
    ] = True,
    align_temperature: Annotated[
        float,
        typer.Option(help="InfoNCE temperature of the alignment stage.", rich_help_panel=TEXT),
    ] = _TRAIN_DEFAULTS.align_text.temperature,
    align_steps: Annotated[
        int, typer.Option(help="Steps of the alignment stage.", rich_help_panel=TEXT)
    ] = _TRAIN_DEFAULTS.align_text.steps,
    shuffle_text: Annotated[
        bool,
        typer.Option(
            "--shuffle-text",
            help="Control experiment: align each item with another item's text (seeded).",
            rich_help_panel=TEXT,
        ),
    ] = False,
    replace: ReplaceOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train SASRec on a prepared dataset; keep the epoch with the best valid NDCG@10.

    The checkpoint (with its config, item ids and data fingerprint) goes to
    <workspace>/models/<dataset>/sasrec.pt. The test split is not used. Ctrl-C stops and
    keeps the best epoch so far. A model already saved for the same data is replaced only if
    this run's best is at least as good (or with --replace); the run says which it kept.

    Example: recagent train sasrec --dataset ml-100k --epochs 100

    By default the item embeddings are first aligned with the items' text (CTRL-lite; SASRec
    only; --no-align-text turns it off), and the checkpoint keeps the text projection.
    """
    given = _given(ctx, _MODEL_FLAGS + _TRAIN_FLAGS)
    if "loss" in given:
        given["loss"] = given["loss"].value
    text_flags = _given(ctx, ["align_temperature", "align_steps", "shuffle_text"])
    if text_flags and not align_text:
        flags = ", ".join(f"--{f.replace('_', '-')}" for f in text_flags)
        raise ConfigError(f"{flags} only apply with --align-text, not with --no-align-text")
    if align_text:
        given["align_text"] = {
            "enabled": True,
            "temperature": align_temperature,
            "steps": align_steps,
            "shuffle_text": shuffle_text,
        }
    values = {**given, **_parse_sets(sets)}
    _run(ctx, "sasrec", dataset, preset, values, replace, no_wait, as_json)


def _generic(name: str, summary: str) -> Any:
    """`recagent train <name>`: the shared training options plus --preset and --set."""

    def command(
        ctx: typer.Context,
        dataset: DatasetOpt = None,
        preset: PresetOpt = None,
        sets: SetOpt = None,
        epochs: EpochsOpt = None,
        patience: Annotated[
            int | None,
            typer.Option(
                help="Epochs without a better valid metric before stopping.",
                rich_help_panel=TRAINING,
            ),
        ] = None,
        lr: LrOpt = None,
        weight_decay: WeightDecayOpt = None,
        batch_size: BatchSizeOpt = None,
        seed: SeedOpt = None,
        device: DeviceOpt = None,
        time_limit: TimeLimitOpt = None,
        metric: MetricOpt = None,
        valid_users: ValidUsersOpt = None,
        replace: ReplaceOpt = False,
        no_wait: NoWaitOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        values = {**_given(ctx, [f for f in _TRAIN_FLAGS if f in ctx.params]), **_parse_sets(sets)}
        _run(ctx, name, dataset, preset, values, replace, no_wait, as_json)

    command.__doc__ = (
        f"Train {summary} on a prepared dataset; keep the epoch with the best valid metric.\n\n"
        f"The checkpoint goes to <workspace>/models/<dataset>/{name}.pt (with its config, item "
        "ids and data fingerprint); the test split is not used; a better saved model is kept "
        "unless --replace. Model settings: --preset, then --set KEY=VALUE.\n\n"
        f"Example: recagent train {name} --dataset ml-100k --set dropout=0.3"
    )
    return command


for _name in ("lrurec", "hstu", "bert4rec", "bst"):
    app.command(_name)(_generic(_name, MODELS[_name][1]))


@app.command("fusion")
def fusion_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Fit the fusion of the trained models on the valid split (method and members).

    Tries reciprocal-rank and score fusion of every subset of two or more trained models,
    keeps the best on valid NDCG@10 (in <workspace>/models/<dataset>/fusion.json) and records
    it; it becomes the default scorer only if it beats every single model on valid.

    Example: recagent train fusion --dataset ml-latest-small
    """
    from recagent.locks import build_lock
    from recagent.models import leaderboard
    from recagent.models.checkpoint import checkpoint_path, load_scorer
    from recagent.models.fusion import FusionConfig, fit_fusion, save_fusion

    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    trained = [m for m in MODELS if checkpoint_path(app_ctx.workspace, ds.name, m).is_file()]
    if len(trained) < 2:
        raise ConfigError(
            f"fusion needs two or more trained models of {ds.name!r}; trained: "
            f"{', '.join(trained) or 'none'} (recagent train sasrec|lrurec|hstu|bert4rec|bst)"
        )
    fusion_file = app_ctx.workspace.models_dir(ds.name) / leaderboard.FUSION
    with build_lock(
        fusion_file.with_name(f"{fusion_file.name}.lock"),
        f"fusion of {ds.name!r}",
        reporter=app_ctx.reporter,
    ):  # one fit at a time writes fusion.json and its leaderboard entry
        scorers = {m: load_scorer(app_ctx.workspace, ds, m, device) for m in trained}
        with app_ctx.reporter.stage(f"fitting fusion of {', '.join(trained)} on valid", None):
            trials = fit_fusion(scorers, ds)
        best = trials[0]
        config = FusionConfig(members=best.members, method=best.method)
        save_fusion(app_ctx.workspace, ds.name, config)
        users = len(ds.split.cases("valid"))
        leaderboard.record(
            app_ctx.workspace, ds.name, ds.fingerprint, "fusion", "valid", best.valid, users
        )
    if as_json:
        app_ctx.print_json([t.model_dump() for t in trials])
        return
    table = Table("members", "method", "valid NDCG@10", "valid HR@10", title=f"fusion on {ds.name}")
    for t in trials[:10]:
        table.add_row(
            ",".join(t.members), t.method, f"{t.valid['NDCG@10']:.4f}", f"{t.valid['HR@10']:.4f}"
        )
    app_ctx.out.print(table)
    app_ctx.err.print(f"[green]kept {','.join(best.members)} by {best.method}[/]")


@app.command("popularity")
def popularity_cmd(
    ctx: typer.Context, dataset: DatasetOpt = None, as_json: JsonOpt = False
) -> None:
    """Popularity has nothing to learn: measure it on the valid split and record it."""
    from recagent.commands.evaluate import evaluate_named

    evaluate_named(ctx, "popularity", dataset, "valid", "cpu", as_json)


__all__ = ["app"]
