"""`recagent eval ...`: offline evaluation under the full-ranking protocol."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from recagent.commands.context import get_context
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.evals.fullrank import rank_cases
from recagent.metrics import DEFAULT_KS, summarize
from recagent.models.base import Scorer
from recagent.models.popularity import PopularityScorer
from recagent.progress import Reporter

app = typer.Typer(
    help="Evaluate offline: one model by full ranking (`eval sasrec`), or whole pipelines "
    "under a protocol, saved as a resumable run (`eval run`, `resume`, `list`, `compare`).",
    no_args_is_help=True,
)


class SplitName(StrEnum):
    test = "test"
    valid = "valid"


def evaluate_scorers(
    dataset: Dataset, scorers: list[Scorer], split: str, reporter: Reporter
) -> dict[str, dict[str, float]]:
    """Mean HR@k, NDCG@k (k = 10, 20, 50) and MRR of each scorer on every user of `split`."""
    cases = dataset.split.cases("test" if split == "test" else "valid")
    if not cases:
        raise ConfigError(f"dataset {dataset.name!r} has no user with 3+ interactions to evaluate")
    results = {}
    for scorer in scorers:
        with reporter.stage(f"scoring {scorer.name} on {len(cases):,} users", len(cases)) as adv:
            results[scorer.name] = summarize(rank_cases(scorer, cases, advance=adv), DEFAULT_KS)
    return results


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
    split: Annotated[SplitName, typer.Option(help="Leave-one-out split to score.")] = (
        SplitName.test
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score the trained SASRec and popularity on every user by full ranking.

    All items are ranked, the user's history excluded, one held-out item per user; reports
    HR@k, NDCG@k (k = 10, 20, 50) and MRR.

    Example: recagent eval sasrec --dataset ml-100k --split test
    """
    app_ctx = get_context(ctx)
    from recagent.models.checkpoint import load_sasrec_scorer  # loads torch: only when needed

    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    sasrec = load_sasrec_scorer(app_ctx.workspace, ds, device)
    popularity = PopularityScorer.from_dataset(ds)
    results = evaluate_scorers(ds, [sasrec, popularity], split.value, app_ctx.reporter)
    users = len(ds.split.eval_users)
    if as_json:
        app_ctx.print_json(
            {"dataset": ds.name, "split": split.value, "users": users, "models": results}
        )
        return
    names = list(next(iter(results.values())))
    table = Table("model", *names, title=f"{ds.name}, {split.value} split, {users:,} users")
    for model, metrics in results.items():
        table.add_row(model, *(f"{metrics[n]:.4f}" for n in names))
    app_ctx.out.print(table)
