"""The three SASRec losses side by side, everything else at its default, judged on the valid
split only (this is how the default loss was chosen; the test split is not read).

    python benchmarks/sasrec_losses.py run --dataset ml-latest-small-5core --loss full-ce \
        [--time-limit-min 10] [--set dropout=0.5 --set batch_size=64 ...]
    python benchmarks/sasrec_losses.py report
    python benchmarks/sasrec_losses.py test-report   # after choosing: the test split, once

Runs one thread and reports process CPU seconds next to wall time, so that runs made while
other work shared the cores (e.g. `nice -n 19`) stay comparable.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

LOSSES = ("bce", "sampled-softmax", "full-ce")
DATASETS = ("ml-100k", "ml-latest-small-5core")


class CpuClock:
    """A progress reporter that notes the process CPU time at the end of every epoch."""

    def __init__(self) -> None:
        self.start = time.process_time()
        self.marks: list[float] = []

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator:
        yield lambda n=1, **fields: self.marks.append(time.process_time() - self.start)


def _run_name(dataset: str, loss: str, settings: list[str], seed: int) -> str:
    """The result file's (and workspace's) name of one loss run."""
    return f"losses-{dataset}-{loss}{common.tag(settings)}-seed{seed}"


def run(args: argparse.Namespace) -> None:
    import torch

    from recagent.models.sasrec import SASRecConfig
    from recagent.models.train import SASRecTrainConfig, train_sasrec
    from recagent.workspace import Workspace

    torch.set_num_threads(1)
    ds = common.prepare_dataset(args.dataset)
    model_set, train_set = common.overrides(args.set, SASRecConfig, SASRecTrainConfig)
    config = SASRecConfig(loss=args.loss, **model_set)
    limit = args.time_limit_min * 60 if args.time_limit_min else None
    options = SASRecTrainConfig(seed=args.seed, time_limit_s=limit, **train_set)
    name = _run_name(args.dataset, args.loss, args.set, args.seed)
    ws = Workspace(common.WORK / f"home-{name}")
    clock = CpuClock()
    machine = common.machine()
    result = train_sasrec(ds, config, options, ws, clock)
    common.write_result(
        name,
        {
            "dataset": args.dataset,
            "loss": args.loss,
            "set": args.set,
            "seed": args.seed,
            "valid": result.valid,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped": result.stopped,
            "cpu_s_to_best": clock.marks[result.best_epoch - 1],
            "cpu_s_per_epoch": clock.marks[-1] / len(clock.marks),
            "wall_s_to_best": result.seconds_to_best,
            "curve": [round(h.valid_ndcg10, 4) for h in result.history],
            "machine": machine,
        },
    )


def report(_: argparse.Namespace) -> None:
    print(
        "| dataset | loss | changed | valid NDCG@10 | valid HR@10 | best epoch / run | stopped "
        "| CPU s to best | CPU s per epoch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset in DATASETS:
        for loss in LOSSES:
            for r in common.read_results(f"losses-{dataset}-{loss}-"):
                if r["loss"] != loss:
                    continue
                print(
                    f"| {dataset} | {loss} | {', '.join(r.get('set', [])) or '-'} | "
                    f"{r['valid']['NDCG@10']:.4f} | {r['valid']['HR@10']:.4f} | "
                    f"{r['best_epoch']} / {r['epochs_run']} | {r.get('stopped', '-')} | "
                    f"{r['cpu_s_to_best']:.0f} | {r['cpu_s_per_epoch']:.1f} |"
                )


def test_report(_: argparse.Namespace) -> None:
    """After the choice, for the record: each loss run's checkpoint on the test split."""
    import torch

    from recagent.errors import ArtifactError
    from recagent.evals.fullrank import rank_cases
    from recagent.metrics import summarize
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.workspace import Workspace

    torch.set_num_threads(1)
    print("| dataset | loss | changed | valid NDCG@10 | test NDCG@10 | test HR@10 |")
    print("|---|---|---|---|---|---|")
    for dataset in DATASETS:
        ds = common.prepare_dataset(dataset)
        for r in common.read_results(f"losses-{dataset}-"):
            name = _run_name(dataset, r["loss"], r.get("set", []), r["seed"])
            try:
                scorer = load_sasrec_scorer(Workspace(common.WORK / f"home-{name}"), ds)
            except ArtifactError:
                continue  # its checkpoint was deleted
            test = summarize(rank_cases(scorer, ds.split.cases("test")))
            print(
                f"| {dataset} | {r['loss']} | {', '.join(r.get('set', [])) or '-'} | "
                f"{r['valid']['NDCG@10']:.4f} | {test['NDCG@10']:.4f} | {test['HR@10']:.4f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("run")
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--loss", choices=LOSSES, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--time-limit-min", type=float, help="stop training after this many (wall) minutes"
    )
    common.add_set_option(p)
    p.set_defaults(run=run)
    sub.add_parser("report").set_defaults(run=report)
    sub.add_parser("test-report").set_defaults(run=test_report)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
