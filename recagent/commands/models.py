"""`recagent models`: the trained models of a dataset with their valid and test metrics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recagent.commands.context import DatasetOpt, get_context
from recagent.data.dataset import Dataset
from recagent.models import leaderboard
from recagent.models.registry import ALL


def models_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models of a dataset: trained or not, their last valid and test metrics, and
    the default (the best on valid NDCG@10, which the agent and the tools use).

    Metrics are recorded by `recagent train <model>` (valid) and `recagent eval <model>`;
    numbers from an older checkpoint or older data are not shown.

    Example: recagent models --dataset ml-100k
    """
    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    entries = leaderboard.current(app_ctx.workspace, ds.name, ds.fingerprint)
    best = leaderboard.best_model(app_ctx.workspace, ds.name, ds.fingerprint)
    rows = []
    for name in ALL:
        trained = leaderboard.identity(app_ctx.workspace, ds.name, name) is not None
        splits = entries.get(name, {})
        rows.append(
            {
                "model": name,
                "trained": trained,
                "default": name == best,
                **{
                    f"{split}_{metric}": splits[split].metrics.get(metric)
                    for split in ("valid", "test")
                    if split in splits
                    for metric in ("NDCG@10", "HR@10")
                },
            }
        )
    if as_json:
        app_ctx.print_json({"dataset": ds.name, "default": best, "models": rows})
        return
    table = Table(
        "model",
        "trained",
        "valid NDCG@10",
        "valid HR@10",
        "test NDCG@10",
        "test HR@10",
        title=f"models of {ds.name}",
    )
    for row in rows:

        def cell(key: str, row: dict = row) -> str:
            value = row.get(key)
            return "-" if value is None else f"{value:.4f}"

        name = f"{row['model']} (default)" if row["default"] else str(row["model"])
        table.add_row(
            name,
            "yes" if row["trained"] else "no",
            cell("valid_NDCG@10"),
            cell("valid_HR@10"),
            cell("test_NDCG@10"),
            cell("test_HR@10"),
        )
    app_ctx.out.print(table)
    if best is None:
        app_ctx.err.print(
            "no model measured on valid yet: the agent uses SASRec "
            "(`recagent train <model>` records valid metrics)"
        )


__all__ = ["models_cmd"]
