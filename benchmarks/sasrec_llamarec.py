"""SASRec on ml-latest-small under the LlamaRec paper's protocol, against its table.

Protocol: all ratings are interactions; iterative 5-core on users and items (610 users,
3,650 items); each user's items ordered by (timestamp, item id); leave-one-out (valid =
second to last, test = last); every item ranked, the user's history excluded. The
checkpoint is chosen on valid NDCG@10; the test split is scored once, at the end.

    for s in 0 1 2; do
      flock /tmp/recagent-bench.lock python benchmarks/sasrec_llamarec.py run --seed $s
    done
    python benchmarks/sasrec_llamarec.py report

Targets (LlamaRec paper, "ML-100k" = this dataset): LRURec NDCG@10 0.0705, Recall@10
0.1426. Also quoted: its SASRec 0.0522 / 0.0993, LRURec + Llama-2-7B 0.0759 / 0.1524.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

DATASET = "ml-latest-small-5core"
TARGET = {"NDCG@10": 0.0705, "HR@10": 0.1426}
PAPER = {
    "SASRec (LlamaRec paper)": (0.0522, 0.0993),
    "LRURec (target)": (0.0705, 0.1426),
    "LRURec + Llama-2-7B ranker": (0.0759, 0.1524),
}


def run(args: argparse.Namespace) -> None:
    from recagent.evals.fullrank import rank_cases
    from recagent.metrics import summarize
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.models.popularity import PopularityScorer
    from recagent.models.sasrec import SASRecConfig
    from recagent.models.train import SASRecTrainConfig, train_sasrec
    from recagent.workspace import Workspace

    ds = common.prepare_dataset(DATASET)
    stats = (ds.interactions.n_users, ds.n_items)
    if stats != (610, 3650):
        raise SystemExit(f"expected 610 users x 3,650 items, prepared {stats}")
    name = f"llamarec{common.tag(args.set)}-seed{args.seed}"
    ws = Workspace(common.WORK / f"home-{name}")
    model_set, train_set = common.overrides(args.set, SASRecConfig, SASRecTrainConfig)
    config = SASRecConfig(**model_set)
    options = SASRecTrainConfig(seed=args.seed, **train_set)
    machine = common.machine()
    result = train_sasrec(ds, config, options, ws)
    scorer = load_sasrec_scorer(ws, ds)
    test = summarize(rank_cases(scorer, ds.split.cases("test")))
    popularity = summarize(rank_cases(PopularityScorer.from_dataset(ds), ds.split.cases("test")))
    common.write_result(
        name,
        {
            "seed": args.seed,
            "set": args.set,
            **common.training_record(result, config, options),
            "valid": result.valid,
            "test": test,
            "popularity_test": popularity,
            "machine": machine,
        },
    )
    print(
        f"seed {args.seed}: test NDCG@10 {test['NDCG@10']:.4f} HR@10 {test['HR@10']:.4f} "
        f"(best epoch {result.best_epoch}, {result.seconds_to_best:.0f} s to best)"
    )


def report(args: argparse.Namespace) -> None:
    runs = common.read_results(f"llamarec{common.tag(args.set)}-seed")
    if not runs:
        raise SystemExit("no runs yet: `python benchmarks/sasrec_llamarec.py run --seed 0`")
    med = {k: common.median([r["test"][k] for r in runs]) for k in ("NDCG@10", "HR@10")}
    print(f"{len(runs)} seeds ({', '.join(str(r['seed']) for r in runs)}), test split, median\n")
    print("| model | NDCG@10 | Recall@10 |")
    print("|---|---|---|")
    for name, (n, r) in PAPER.items():
        print(f"| {name} | {n:.4f} | {r:.4f} |")
    print(f"| **recagent SASRec (ours)** | **{med['NDCG@10']:.4f}** | **{med['HR@10']:.4f}** |")
    pop = runs[0]["popularity_test"]
    print(f"| popularity (ours) | {pop['NDCG@10']:.4f} | {pop['HR@10']:.4f} |")
    for key, label in (("NDCG@10", "NDCG@10"), ("HR@10", "Recall@10")):
        gap = med[key] - TARGET[key]
        verdict = "met" if gap >= 0 else "MISSED"
        print(
            f"\n{label}: {med[key]:.4f} vs target {TARGET[key]:.4f}: {verdict} "
            f"({gap:+.4f}, {med[key] / TARGET[key] - 1:+.1%})"
        )
    print()
    for r in runs:
        print(
            f"seed {r['seed']}: test NDCG@10 {r['test']['NDCG@10']:.4f} Recall@10 "
            f"{r['test']['HR@10']:.4f}; valid NDCG@10 {r['valid']['NDCG@10']:.4f}; best epoch "
            f"{r['best_epoch']}/{r['epochs_run']}; {r['seconds_to_best']:.0f} s to best; "
            f"{r['seconds_per_epoch']:.1f} s/epoch; load {r['machine']['load_avg']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("run")
    p.add_argument("--seed", type=int, default=0)
    common.add_set_option(p)
    p.set_defaults(run=run)
    p = sub.add_parser("report")
    common.add_set_option(p)
    p.set_defaults(run=report)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
