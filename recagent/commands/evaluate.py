"""`recagent eval <model>`: one model by full ranking on the leave-one-out split.

`eval sasrec|lrurec|hstu|bert4rec|bst|fusion|popularity` scores every user (history excluded, one
held-out item each) and reports HR@k, NDCG@k (k = 10, 20, 50) and MRR, with popularity beside
it; BST also reports its retriever's recall@pool (what bounds a reranker). Results are
recorded in the workspace's leaderboard (`recagent models`); valid numbers choose the default
model, test numbers are only reported.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from recagent.commands.context import DatasetOpt, get_context
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.metrics import DEFAULT_KS, summarize
from recagent.models.base import Reranks, Scorer
from recagent.models.evaluation import rank_cases
from recagent.models.registry import ALL, MODELS
from recagent.progress import Reporter

app = typer.Typer(
    help="Evaluate offline: one model by full ranking (`eval sasrec`, `eval hstu`, ...), or "
    "whole pipelines under a protocol, saved as a resumable run (`eval run`, `resume`, `list`, "
    "`compare`).",
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


def evaluate_named(
    ctx: typer.Context,
    name: str,
    dataset: str | None,
    split: str,
    device: str,
    as_json: bool,
) -> None:
    """Evaluate model `name` (and popularity), record both, print the table or JSON."""
    from recagent.models import leaderboard
    from recagent.models.scorers import load_named

    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    names = [name] if name == "popularity" else [name, "popularity"]
    scorers = [load_named(app_ctx.workspace, ds, n, device) for n in names]
    results = evaluate_scorers(ds, scorers, split, app_ctx.reporter)
    users = len(ds.split.eval_users)
    for n, metrics in results.items():
        leaderboard.record(app_ctx.workspace, ds.name, ds.fingerprint, n, split, metrics, users)  # type: ignore[arg-type]
    notes: list[str] = []
    extra: dict[str, Any] = {}
    reranker = scorers[0]
    if isinstance(reranker, Reranks):
        cases = ds.split.cases("test" if split == "test" else "valid")
        pool = reranker.pool
        recall = summarize(rank_cases(reranker.retriever, cases), (10, pool))
        extra["retriever"] = {"name": reranker.retriever.name, "pool": pool, **recall}
        notes.append(
            f"{name} reranks {reranker.retriever.name}'s top {pool}: {reranker.retriever.name} "
            f"alone has HR@10 {recall['HR@10']:.4f}, recall@{pool} {recall[f'HR@{pool}']:.4f} "
            f"(the most a reranker can reach)"
        )
    if as_json:
        app_ctx.print_json(
            {"dataset": ds.name, "split": split, "users": users, "models": results, **extra}
        )
        return
    metric_names = list(next(iter(results.values())))
    table = Table("model", *metric_names, title=f"{ds.name}, {split} split, {users:,} users")
    for model, metrics in results.items():
        label = model
        if "retriever" in extra and model == name:
            label = (
                f"{name} ({extra['retriever']['name']} top-{extra['retriever']['pool']} reranked)"
            )
        table.add_row(label, *(f"{metrics[n]:.4f}" for n in metric_names))
    app_ctx.out.print(table)
    for note in notes:
        app_ctx.err.print(note, soft_wrap=True)


DESCRIPTIONS = {
    **{name: summary for name, (_, summary) in MODELS.items()},
    "popularity": "popularity: interaction counts over the training split",
    "fusion": "fusion: the trained models' rankings combined as fitted on valid",
}


def _command(name: str) -> Any:
    def command(
        ctx: typer.Context,
        dataset: DatasetOpt = None,
        split: Annotated[SplitName, typer.Option(help="Leave-one-out split to score.")] = (
            SplitName.test
        ),
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        evaluate_named(ctx, name, dataset, split.value, device, as_json)

    command.__doc__ = (
        f"Score {DESCRIPTIONS[name]} (and popularity) on every user by full ranking.\n\n"
        "All items are ranked, the user's history excluded, one held-out item per user; "
        "reports HR@k, NDCG@k (k = 10, 20, 50) and MRR, and records them (`recagent "
        "models`).\n\n"
        f"Example: recagent eval {name} --dataset ml-100k --split valid"
    )
    return command


for _name in ALL:
    app.command(_name)(_command(_name))

__all__ = ["app", "evaluate_named", "evaluate_scorers"]
