"""SASRec on a generated catalog of 50,000 users x 17,000 items x 450,000 interactions: how long
an epoch takes (training, and validating on a fixed sample of users or on all of them) and
how long training to the best valid epoch takes, on 2 CPU cores.

The data has structure a sequence model can learn: item popularity is Zipf-like, and each
next item is, with probability 0.5, one of the three items that follow the previous one in a
fixed random "chain" order, otherwise a popular item. Written as an ml-latest-small-style
CSV pair and prepared by the ordinary loader.

    flock /tmp/recagent-bench.lock nice -n 19 python benchmarks/sasrec_scale.py epoch
    flock /tmp/recagent-bench.lock nice -n 19 python benchmarks/sasrec_scale.py train
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

USERS, ITEMS, INTERACTIONS = 50_000, 17_000, 450_000
NAME = "generated-50k"
SOURCE = common.WORK / "generated-50k"


def generate(seed: int = 0) -> Path:
    """Write movies.csv and ratings.csv (once)."""
    if (SOURCE / "ratings.csv").is_file():
        return SOURCE
    rng = np.random.default_rng(seed)
    SOURCE.mkdir(parents=True, exist_ok=True)
    chain = rng.permutation(ITEMS)  # item at chain[i] is followed by chain[i+1..i+3]
    position = np.empty(ITEMS, dtype=np.int64)
    position[chain] = np.arange(ITEMS)
    popularity = 1.0 / np.arange(1, ITEMS + 1) ** 0.9
    popularity /= popularity.sum()
    lengths = np.maximum(3, rng.geometric(1 / 9.0, size=USERS))
    lengths = np.round(lengths * INTERACTIONS / lengths.sum()).astype(np.int64).clip(3)
    rows = []
    for u, n in enumerate(lengths, start=1):
        item = int(rng.choice(ITEMS, p=popularity))
        t = int(rng.integers(1_000_000_000, 1_500_000_000))
        seen = set()
        for _ in range(n):
            if item not in seen:
                seen.add(item)
                rows.append(f"{u},{item + 1},4.0,{t}")
            t += int(rng.integers(30, 86_400))
            if rng.random() < 0.5:
                item = int(chain[(position[item] + rng.integers(1, 4)) % ITEMS])
            else:
                item = int(rng.choice(ITEMS, p=popularity))
    (SOURCE / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n"
    )
    movies = [f"{i},Item {i} (2000),Drama" for i in range(1, ITEMS + 1)]
    (SOURCE / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    return SOURCE


def dataset() -> Any:
    from recagent.data.dataset import Dataset
    from recagent.data.prepare import PrepareConfig, prepare
    from recagent.errors import ArtifactError
    from recagent.workspace import Workspace

    ws = Workspace(common.HOME)
    try:
        return Dataset.load(ws, NAME)
    except ArtifactError:
        source = generate()
        return prepare(PrepareConfig(dataset="ml-latest-small", name=NAME, source=source), ws)


def epoch(args: argparse.Namespace) -> None:
    """One epoch with validation on the default sample, then one validating every user."""
    from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
    from recagent.models.train import train_sasrec
    from recagent.workspace import Workspace

    ds = dataset()
    stats = {
        "users": ds.interactions.n_users,
        "items": ds.n_items,
        "interactions": len(ds.interactions),
    }
    print(stats)
    out: dict[str, Any] = {"data": stats, "machine": common.machine()}
    for label, valid_users in (("sampled", SASRecTrainConfig().valid_users), ("all", None)):
        ws = Workspace(common.WORK / f"home-scale-{label}")
        options = SASRecTrainConfig(epochs=1, valid_users=valid_users, seed=0)
        start = time.perf_counter()
        result = train_sasrec(ds, SASRecConfig(), options, ws, replace=True)
        wall = time.perf_counter() - start
        h = result.history[0]
        out[label] = {
            "valid_users": result.valid_users,
            "epoch_seconds": h.seconds,
            "wall_seconds": wall,
            "valid_ndcg10": h.valid_ndcg10,
            "peak_rss_mib": common.peak_rss_mib(),
        }
        print(label, out[label])
    common.write_result("scale-epoch", out)


def train(args: argparse.Namespace) -> None:
    """Train to the best valid epoch (early stopping), under a time limit."""
    from recagent.metrics import summarize
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.models.evaluation import rank_cases
    from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
    from recagent.models.train import train_sasrec
    from recagent.workspace import Workspace

    ds = dataset()
    ws = Workspace(common.WORK / "home-scale-train")
    options = SASRecTrainConfig(seed=0, time_limit_s=args.limit_min * 60, patience=args.patience)
    machine = common.machine()
    result = train_sasrec(ds, SASRecConfig(), options, ws, replace=True)
    scorer = load_sasrec_scorer(ws, ds)
    test = summarize(rank_cases(scorer, ds.split.cases("test")))
    record = {
        **common.training_record(result, SASRecConfig(), options),
        "valid": result.valid,
        "valid_users": result.valid_users,
        "test": test,
        "history": [h.model_dump() for h in result.history],
        "machine": machine,
    }
    common.write_result("scale-train", record)
    print(
        f"best epoch {result.best_epoch}/{result.epochs_run} at {result.seconds_to_best:.0f} s "
        f"({result.stopped}); {record['seconds_per_epoch']:.0f} s/epoch; valid NDCG@10 "
        f"{result.valid['NDCG@10']:.4f}; test NDCG@10 {test['NDCG@10']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("epoch").set_defaults(run=epoch)
    p = sub.add_parser("train")
    p.add_argument("--limit-min", type=float, default=20.0)
    p.add_argument("--patience", type=int, default=4)
    p.set_defaults(run=train)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
