"""Every model (SASRec, LRURec, HSTU, BERT4Rec, BST, fusion) on ml-latest-small (the LlamaRec
protocol, 5-core) and ML-100k: test NDCG@10 / Recall@10 over seeds, each model's paired
difference from SASRec on the same test users (bootstrap interval), time to the best valid
epoch, scoring time per history.

Each (dataset, seed) trains in its own workspace, SASRec first (BST reranks its top 100),
then fusion is fitted on valid over the trained models. Every choice is made on the valid
split; the test split is scored once per run, after training (`--no-test` for tuning runs,
which then never read it). Each run stores every test user's target rank, so `report` pairs
the models user by user.

    export PYTHONPATH=$PWD RECAGENT_TEST_DATA=../shared/data
    L="flock /tmp/recagent-bench.lock"
    for d in ml-latest-small-5core ml-100k; do for s in 0 1 2; do
      for m in sasrec lrurec hstu; do
        $L python benchmarks/models_bench.py run --dataset $d --model $m --seed $s
      done
      $L python benchmarks/models_bench.py fusion --dataset $d --seed $s
    done; done
    python benchmarks/models_bench.py report

(`bert4rec` and `bst` run the same way.) Tuning (valid only): `run --model hstu --set
loss=full-ce --tag=-fullce --home-tag=-fullce --no-test`, then `report --tuning`; a tagged
variant with test (`--tag=-tuned`) is paired against the untagged SASRec by `report
--tag=-tuned`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

DATASETS = ("ml-latest-small-5core", "ml-100k")
MODELS = ("sasrec", "lrurec", "hstu", "bert4rec", "bst", "fusion")
SPEED_HISTORIES = 200
PAPER = {  # LlamaRec paper, ml-latest-small ("ML-100k" there): NDCG@10, Recall@10
    "SASRec (LlamaRec paper)": (0.0522, 0.0993),
    "LRURec (LlamaRec paper; the target)": (0.0705, 0.1426),
    "LlamaRec (LRURec + Llama-2-7B; stretch)": (0.0759, 0.1524),
}


def _workspace(args: argparse.Namespace) -> Any:
    from recagent.workspace import Workspace

    return Workspace(common.WORK / f"home-models-{args.dataset}-seed{args.seed}{args.home_tag}")


def _parse(pairs: list[str]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _ranks(ranks: Any) -> list[float]:
    """Each test user's target rank (-1: a miss), in the split's case order: what the paired
    intervals between models are computed from."""
    return [float(r) if r < float("inf") else -1.0 for r in ranks]


def scoring_ms(scorer: Any, ds: Any, n: int = SPEED_HISTORIES) -> dict[str, float]:
    """Median and p90 milliseconds to score every item for one history (1 thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cases = ds.split.cases("test")[:n]
        histories = [ds.catalog.ids_at(c.history) for c in cases]
        scorer.score(histories[0])  # warm-up
        times = []
        for h in histories:
            start = time.perf_counter()
            scorer.score(h)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(threads)
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))]}


def run(args: argparse.Namespace) -> None:
    import torch

    from recagent.metrics import summarize
    from recagent.models.checkpoint import load_scorer
    from recagent.models.evaluation import rank_cases
    from recagent.models.registry import spec
    from recagent.models.train import train_model

    torch.set_num_threads(args.threads)
    ds = common.prepare_dataset(args.dataset)
    ws = _workspace(args)
    model_spec = spec(args.model)
    values = _parse(args.set)
    model_values = {k: v for k, v in values.items() if k in model_spec.config_type.model_fields}
    train_values = {k: v for k, v in values.items() if k not in model_values}
    config = model_spec.config(args.preset, **model_values)
    options = model_spec.train_type(seed=args.seed, **train_values)
    machine = common.machine()
    text = None
    if options.align_text.enabled:  # CTRL-lite: the catalog's text vectors (WordLlama)
        from recagent.config import IndexConfig
        from recagent.represent.text_vectors import text_vectors

        text = text_vectors(ws, ds, IndexConfig())
    result = train_model(args.model, ds, config, options, ws, replace=True, text=text)
    scorer = load_scorer(ws, ds, args.model)
    record: dict[str, Any] = {
        "dataset": args.dataset,
        "model": args.model,
        "tag": args.tag,
        "seed": args.seed,
        "set": args.set,
        "preset": args.preset,
        "threads": args.threads,
        **common.training_record(result, config, options),
        "valid": result.valid,
        "history": [h.model_dump() for h in result.history],
        "machine": machine,
    }
    if not args.no_test:
        ranks = rank_cases(scorer, ds.split.cases("test"))
        record["test"] = summarize(ranks)
        record["test_ranks"] = _ranks(ranks)
        if args.model == "bst":
            retriever = scorer.retriever  # type: ignore[attr-defined]
            record["retriever_test"] = summarize(
                rank_cases(retriever, ds.split.cases("test")), (10, 100)
            )
        if args.model in ("hstu", "bst"):  # what chat gets: histories without timestamps
            untimed = [replace(c, times=None) for c in ds.split.cases("test")]
            record["test_without_times"] = summarize(rank_cases(scorer, untimed))
        record["scoring_ms"] = scoring_ms(scorer, ds)
    name = f"models-{args.dataset}-{args.model}{args.tag}-seed{args.seed}"
    common.write_result(name, record)
    test = record.get("test", {})
    print(
        f"{args.model} seed {args.seed}: valid NDCG@10 {result.valid['NDCG@10']:.4f}"
        + (f", test NDCG@10 {test['NDCG@10']:.4f} HR@10 {test['HR@10']:.4f}" if test else "")
        + f" (best epoch {result.best_epoch}/{result.epochs_run}, {result.seconds_to_best:.0f} s"
        f" to best, {record['seconds_per_epoch']:.1f} s/epoch)"
    )


def fusion(args: argparse.Namespace) -> None:
    """Fit fusion on valid over the models trained in this (dataset, seed) workspace, then
    score test once with the chosen one."""
    from recagent.metrics import summarize
    from recagent.models.checkpoint import checkpoint_path, load_scorer
    from recagent.models.evaluation import rank_cases
    from recagent.models.fusion import FusionConfig, FusionScorer, fit_fusion, save_fusion
    from recagent.models.registry import MODELS as TRAINABLE

    ds = common.prepare_dataset(args.dataset)
    ws = _workspace(args)
    trained = [m for m in TRAINABLE if checkpoint_path(ws, ds.name, m).is_file()]
    scorers = {m: load_scorer(ws, ds, m) for m in trained}
    machine = common.machine()
    start = time.perf_counter()
    trials = fit_fusion(scorers, ds)
    fit_s = time.perf_counter() - start
    best = trials[0]
    config = FusionConfig(members=best.members, method=best.method)
    save_fusion(ws, ds.name, config)
    fused = FusionScorer([scorers[m] for m in best.members], config)
    single_valid = {
        m: summarize(rank_cases(s, ds.split.cases("valid"))) for m, s in scorers.items()
    }
    best_single = max(single_valid, key=lambda m: single_valid[m]["NDCG@10"])
    record = {
        "dataset": args.dataset,
        "model": "fusion",
        "tag": args.tag,
        "seed": args.seed,
        "members": best.members,
        "method": best.method,
        "fit_seconds": fit_s,
        "valid": best.valid,
        "trials": [t.model_dump() for t in trials],
        "single_valid": single_valid,
        "best_single_on_valid": best_single,
        "fusion_wins_on_valid": best.valid["NDCG@10"] > single_valid[best_single]["NDCG@10"],
        "machine": machine,
    }
    if not args.no_test:
        ranks = rank_cases(fused, ds.split.cases("test"))
        record["test"] = summarize(ranks)
        record["test_ranks"] = _ranks(ranks)
        record["scoring_ms"] = scoring_ms(fused, ds)
    common.write_result(f"models-{args.dataset}-fusion{args.tag}-seed{args.seed}", record)
    print(
        f"fusion seed {args.seed}: {best.method} of {','.join(best.members)}: valid NDCG@10 "
        f"{best.valid['NDCG@10']:.4f} (best single {best_single} "
        f"{single_valid[best_single]['NDCG@10']:.4f})"
        + (f", test NDCG@10 {record['test']['NDCG@10']:.4f}" if "test" in record else "")
    )


def _fmt_range(values: list[float]) -> str:
    return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def _per_user_ndcg(record: dict[str, Any]) -> Any:
    import numpy as np

    from recagent.metrics import ndcg

    ranks = np.asarray(record["test_ranks"], dtype=float)
    ranks[ranks < 0] = np.inf
    return ndcg(ranks, 10)


def paired(runs: list[dict[str, Any]], dataset: str, tag: str, versus: str = "sasrec") -> None:
    """Each model of the runs tagged `tag` against the untagged `versus` (the default runs)
    on the same test users: the per-user NDCG@10 difference, averaged over the seeds both
    ran, with a 95% bootstrap interval over users (1,000 resamples), and the same per seed."""
    import numpy as np

    from recagent.evals.beyond import bootstrap_ci

    def by_seed(model: str, tag: str) -> dict[int, dict[str, Any]]:
        return {
            r["seed"]: r
            for r in runs
            if r["dataset"] == dataset and r["model"] == model and r["tag"] == tag
            and "test_ranks" in r
        }  # fmt: skip

    base = by_seed(versus, "")
    rows = []
    for model in MODELS:
        mine = by_seed(model, tag)
        seeds = sorted(set(mine) & set(base))
        if (model == versus and not tag) or not seeds:
            continue
        diffs = [_per_user_ndcg(mine[s]) - _per_user_ndcg(base[s]) for s in seeds]
        pooled = np.mean(diffs, axis=0)
        low, high = bootstrap_ci(pooled, seed=0)
        each = ", ".join(f"{d.mean():+.4f}" for d in diffs)
        base_mean = np.mean([_per_user_ndcg(base[s]).mean() for s in seeds])
        rows.append(
            f"| {model}{tag} | {len(seeds)} | {pooled.mean():+.4f} [{low:+.4f}, {high:+.4f}] | "
            f"{pooled.mean() / base_mean:+.1%} | {each} |"
        )
    if rows:
        label = f"{versus} (untagged runs)" if tag else versus
        print(f"\nTest NDCG@10 minus {label}, same users (paired), mean over seeds:\n")
        print("| model | seeds | difference [95% interval] | relative | per seed |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))


def chosen(runs: list[dict[str, Any]], dataset: str, tag: str) -> None:
    """What `recagent models` would pick in each seed's workspace (the best valid NDCG@10,
    fusion included) and its test NDCG@10: the number the LlamaRec target is about."""
    picks = []
    for seed in sorted({r["seed"] for r in runs if r["dataset"] == dataset}):
        rs = [r for r in runs if r["dataset"] == dataset and r["seed"] == seed
              and r["tag"] == tag and "test" in r]  # fmt: skip
        if rs:
            # fusion wins only by beating every single model (ties keep the single model)
            best = max(rs, key=lambda r: (r["valid"]["NDCG@10"], r["model"] != "fusion"))
            picks.append((seed, best["model"], best["test"]["NDCG@10"]))
    if picks:
        each = "; ".join(f"seed {s}: {m} {t:.4f}" for s, m, t in picks)
        median = statistics.median(t for _, _, t in picks)
        print(f"\nChosen on valid, per seed: {each}; test NDCG@10 median **{median:.4f}**")


def report(args: argparse.Namespace) -> None:
    runs = common.read_results("models-")
    if args.tuning:
        print(
            "| dataset | model | tag | seed | valid NDCG@10 | valid HR@10 | best epoch / run | "
            "s to best | s/epoch |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(runs, key=lambda r: (r["dataset"], r["model"], r["tag"], r["seed"])):
            if r["model"] == "fusion":
                continue
            print(
                f"| {r['dataset']} | {r['model']} | {r['tag'] or '-'} | {r['seed']} | "
                f"{r['valid']['NDCG@10']:.4f} | {r['valid']['HR@10']:.4f} | {r['best_epoch']} / "
                f"{r['epochs_run']} | {r['seconds_to_best']:.0f} | {r['seconds_per_epoch']:.1f} |"
            )
        return
    for dataset in DATASETS:
        print(f"\n### {dataset}\n")
        if dataset.startswith("ml-latest"):
            print("| model | test NDCG@10 | test Recall@10 |")
            print("|---|---|---|")
            for name, (n, r) in PAPER.items():
                print(f"| {name} | {n:.4f} | {r:.4f} |")
            print()
        print(
            "| model | seeds | test NDCG@10 median (range) | test Recall@10 median (range) | "
            "valid NDCG@10 | best epoch | s to best | s/epoch | scoring ms (median, p90) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for model in MODELS:
            rs = [r for r in runs if r["dataset"] == dataset and r["model"] == model
                  and r["tag"] == args.tag and "test" in r]  # fmt: skip
            if not rs:
                continue
            nd = [r["test"]["NDCG@10"] for r in rs]
            hr = [r["test"]["HR@10"] for r in rs]
            valid = statistics.median([r["valid"]["NDCG@10"] for r in rs])
            if model == "fusion":
                epochs = to_best = per_epoch = "-"
                label = (
                    "fusion ("
                    + "; ".join(f"{r['method']} {'+'.join(r['members'])}" for r in rs)
                    + ")"
                )
            else:
                epochs = f"{statistics.median([r['best_epoch'] for r in rs]):.0f}"
                best_s = [r["seconds_to_best"] for r in rs]
                to_best = f"{statistics.median(best_s):.0f} ({min(best_s):.0f}-{max(best_s):.0f})"
                per_epoch = f"{statistics.median([r['seconds_per_epoch'] for r in rs]):.1f}"
                label = model if model != "bst" else "bst (SASRec top-100 reranked)"
            ms = statistics.median([r["scoring_ms"]["median"] for r in rs])
            p90 = statistics.median([r["scoring_ms"]["p90"] for r in rs])
            print(
                f"| {label} | {len(rs)} | {_fmt_range(nd)} | {_fmt_range(hr)} | {valid:.4f} | "
                f"{epochs} | {to_best} | {per_epoch} | {ms:.2f}, {p90:.2f} |"
            )
            if model == "bst":
                rec = [r["retriever_test"]["HR@100"] for r in rs]
                print(f"|  ↳ SASRec alone: recall@100 | | {_fmt_range(rec)} | | | | | | |")
        chosen(runs, dataset, args.tag)
        paired(runs, dataset, args.tag)
        for r in runs:
            if r["dataset"] == dataset and r["tag"] == args.tag and "test" in r:
                load = r["machine"]["load_avg"]
                print(f"<!-- {r['model']} seed {r['seed']}: load {load} -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for step, fn in (("run", run), ("fusion", fusion)):
        p = sub.add_parser(step)
        p.add_argument("--dataset", choices=DATASETS, default=DATASETS[0])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--tag", default="", help="result-name suffix for a variant")
        p.add_argument("--home-tag", default="", help="workspace-name suffix")
        p.add_argument("--no-test", action="store_true", help="tuning: never read test")
        if step == "run":
            p.add_argument("--model", choices=MODELS[:-1], required=True)
            p.add_argument("--preset")
            p.add_argument("--threads", type=int, default=2)
            common.add_set_option(p)
        p.set_defaults(run=fn)
    p = sub.add_parser("report")
    p.add_argument("--tag", default="")
    p.add_argument("--tuning", action="store_true")
    p.set_defaults(run=report)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
