"""`recagent data ...`: prepare datasets into the workspace and inspect them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recagent.commands.context import get_context
from recagent.commands.tables import print_fitted
from recagent.data.dataset import Dataset
from recagent.data.generic import GenericConfig
from recagent.data.prepare import LOADERS, PrepareConfig, prepare
from recagent.data.stats import dataset_stats
from recagent.errors import ConfigError
from recagent.manifest import Manifest


class TieBreak(StrEnum):
    file = "file"
    item = "item"


app = typer.Typer(help="Prepare datasets and inspect them.", no_args_is_help=True)

GENERIC = "Your own data (generic format)"
FILTERS = "Filters and ordering"
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        help="Dataset name in the workspace \\[default: from settings].",
        show_default=False,
    ),
]


def _csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@app.command("prepare")
def prepare_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help=f"Source: {', '.join(LOADERS)}; or any name with --items/--interactions.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the extracted files; without it the official archive "
            "is downloaded and its SHA-256 checked."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Store under this name (keep two variants of a source).")
    ] = None,
    min_rating: Annotated[
        float | None,
        typer.Option(help="Drop interactions rated below this.", rich_help_panel=FILTERS),
    ] = None,
    min_user_interactions: Annotated[
        int,
        typer.Option(
            min=0,
            help="k-core: users need at least this many interactions.",
            rich_help_panel=FILTERS,
        ),
    ] = 0,
    min_item_interactions: Annotated[
        int,
        typer.Option(
            min=0,
            help="k-core: items need at least this many interactions "
            "(items below it leave the catalog).",
            rich_help_panel=FILTERS,
        ),
    ] = 0,
    tie_break: Annotated[
        TieBreak,
        typer.Option(
            help="Order of same-timestamp interactions: file order or item id.",
            rich_help_panel=FILTERS,
        ),
    ] = TieBreak.file,
    keep_repeats: Annotated[
        bool,
        typer.Option(
            "--keep-repeats",
            help="Keep repeated (user, item) pairs (default: keep the first).",
            rich_help_panel=FILTERS,
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Make interactions with an item id missing from the items file an error "
            "(default: skip them with a warning).",
            rich_help_panel=FILTERS,
        ),
    ] = False,
    items: Annotated[
        Path | None, typer.Option(help="Items file (.csv, .tsv, .jsonl).", rich_help_panel=GENERIC)
    ] = None,
    interactions: Annotated[
        Path | None,
        typer.Option(help="Interactions file (.csv, .tsv, .jsonl).", rich_help_panel=GENERIC),
    ] = None,
    item_id_col: Annotated[str, typer.Option(rich_help_panel=GENERIC)] = "item_id",
    user_id_col: Annotated[str, typer.Option(rich_help_panel=GENERIC)] = "user_id",
    title_col: Annotated[
        str,
        typer.Option(
            help="\\[default: title; without one, the start of the first --text-cols column]",
            rich_help_panel=GENERIC,
        ),
    ] = "title",
    year_col: Annotated[
        str | None, typer.Option(help="\\[default: 'year' if present]", rich_help_panel=GENERIC)
    ] = None,
    genres_col: Annotated[
        str | None, typer.Option(help="\\[default: 'genres' if present]", rich_help_panel=GENERIC)
    ] = None,
    genre_sep: Annotated[str, typer.Option(rich_help_panel=GENERIC)] = "|",
    text_cols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns joined into the item's free text.",
            rich_help_panel=GENERIC,
        ),
    ] = None,
    attr_cols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns kept as item attributes.", rich_help_panel=GENERIC
        ),
    ] = None,
    rating_col: Annotated[
        str | None, typer.Option(help="\\[default: 'rating' if present]", rich_help_panel=GENERIC)
    ] = None,
    timestamp_col: Annotated[
        str | None,
        typer.Option(
            help="Epoch seconds or ISO dates \\[default: the first of timestamp, ts, time, "
            "date, datetime, created_at that is present; else file order].",
            rich_help_panel=GENERIC,
        ),
    ] = None,
    sep: Annotated[
        str | None,
        typer.Option(
            help="Field separator \\[default: from the file extension].", rich_help_panel=GENERIC
        ),
    ] = None,
    encoding: Annotated[str, typer.Option(rich_help_panel=GENERIC)] = "utf-8",
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="If another process is preparing this dataset, exit (code 2) saying who, "
            "instead of waiting for it.",
        ),
    ] = False,
) -> None:
    """Prepare a dataset into the workspace (downloads the official archive unless --source).

    Examples:

      recagent data prepare --dataset ml-100k --source ../shared/data/ml-100k

      recagent data prepare --dataset ml-latest --source ../shared/data/ml-latest-small
        --min-user-interactions 5 --min-item-interactions 5

      recagent data prepare --dataset shop --items items.csv --interactions events.csv
        --text-cols description,brand
    """
    app_ctx = get_context(ctx)
    dataset = dataset or app_ctx.settings.dataset
    generic = None
    if (items is None) != (interactions is None):
        raise ConfigError("--items and --interactions go together")
    if items is not None and interactions is not None:
        generic = GenericConfig(
            items=items,
            interactions=interactions,
            item_id_col=item_id_col,
            user_id_col=user_id_col,
            title_col=title_col,
            year_col=year_col,
            genres_col=genres_col,
            genre_sep=genre_sep,
            text_cols=_csv_list(text_cols),
            attr_cols=_csv_list(attr_cols),
            rating_col=rating_col,
            timestamp_col=timestamp_col,
            sep=sep,
            encoding=encoding,
        )
    cfg = PrepareConfig(
        dataset=dataset,
        name=name,
        source=source,
        min_rating=min_rating,
        min_user_interactions=min_user_interactions,
        min_item_interactions=min_item_interactions,
        tie_break=tie_break.value,
        keep_repeats=keep_repeats,
        strict=strict,
        generic=generic,
    )
    result = prepare(
        cfg,
        app_ctx.workspace,
        app_ctx.settings.download_mirror,
        app_ctx.reporter,
        wait=not no_wait,
    )
    stats = result.manifest.stats
    for warning in stats.get("warnings", []):
        app_ctx.err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    app_ctx.out.print(
        f"[green]prepared[/] {result.name}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions -> {app_ctx.workspace.dataset(result.name).base}"
    )
    dropped = {k: v for k, v in stats.get("filters", {}).items() if k.startswith("dropped") and v}
    if dropped:
        app_ctx.out.print("  filtered: " + ", ".join(f"{k[8:]}={v:,}" for k, v in dropped.items()))


@app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Users, items, interactions, density and sequence-length percentiles of a dataset."""
    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    stats = dataset_stats(ds).model_dump()
    stats = {"dataset": ds.name, **stats, "fingerprint": ds.fingerprint}
    if as_json:
        app_ctx.print_json(stats)
        return
    table = Table(title=f"dataset {ds.name}", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a fingerprint folds at 80 columns, never cut
    for key, value in stats.items():
        if key == "sequence_length":
            value = "  ".join(f"{k} {v:g}" for k, v in value.items())
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), str(value))
    app_ctx.out.print(table)


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Datasets prepared in the workspace."""
    app_ctx = get_context(ctx)
    rows = []
    for name in app_ctx.workspace.dataset_names():
        lease = app_ctx.workspace.dataset(name).open_current()
        if lease is None:
            continue
        with lease:
            manifest = Manifest.read(lease.folder)
        s = manifest.stats
        rows.append(
            {
                "name": name,
                "source": manifest.config.get("dataset"),
                "users": s.get("users"),
                "items": s.get("items"),
                "interactions": s.get("interactions"),
                "created": manifest.created_at,
                "fingerprint": manifest.fingerprint[:12],
            }
        )
    if as_json:
        app_ctx.print_json(rows)
        return
    if not rows:
        app_ctx.out.print("no datasets yet: run `recagent data prepare --dataset ml-100k`")
        return
    cells = [[f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()] for row in rows]
    print_fitted(app_ctx.out, list(rows[0]), cells)
