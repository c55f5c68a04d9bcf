"""Our SASRec (or BERT4Rec, `--model BERT4Rec`) next to RecBole 1.2.1's on ML-100k: same
split, same metrics, same machine.

Steps (each writes JSON under benchmarks/.work/results/; wrap timed steps in the lock):

    python benchmarks/sasrec_vs_recbole.py setup      # RecBole's own venv, from the registry
    flock /tmp/recagent-bench.lock python benchmarks/sasrec_vs_recbole.py recbole
    for s in 0 1 2; do
      flock /tmp/recagent-bench.lock python benchmarks/sasrec_vs_recbole.py ours --seed $s
    done
    python benchmarks/sasrec_vs_recbole.py report     # the Markdown table for RESULTS.md

Same data, split and metrics on both sides:

- Our data layer prepares ML-100k; `recbole` writes it as a RecBole atomic file whose
  `timestamp` column is each interaction's position in our per-user order (RecBole's `TO`
  ordering sorts by timestamp and ML-100k has many same-second ties, which it would not
  break our way). RecBole's leave-one-out `LS valid_and_test` then holds out exactly our valid
  and test items; the worker checks this user by user before training.
- RecBole's full-sort evaluation of sequential models does not remove history items, ours
  does. So both models are scored the same way: for every user, RecBole's model scores all
  items for our valid/test history, and `report` ranks both score matrices with
  `recagent.metrics` (history excluded, NaN = miss). RecBole's own numbers are kept too.

RecBole's settings are its defaults (2 blocks, 2 heads, 64-d, dropout 0.5, last 50 items,
Adam 1e-3, batch 2048, early stopping after 10 epochs) with `loss_type=CE`, `LS
valid_and_test`, `order=TO`, `mode=full`; `valid_metric=NDCG@10` to select on the same
metric as ours. It trains at most `--cap-min` minutes (an epoch that would cross the cap is
not started). The worker part runs inside RecBole's venv and imports nothing from recagent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

VENV = common.WORK / "recbole-venv"
VENV_PY = VENV / "bin" / "python"
# torch pinned to the local CPU build (a bare `torch` could pull a multi-GB CUDA build)
PINS = ["recbole==1.2.1", "numpy<2", "pandas<2.3", "scipy<1.14", "setuptools<81", "torch==2.13.0"]
DATA = common.WORK / "recbole-data"
ATOMIC = "ml100k_loo"
SMOKE_USERS = 60
DATASET = "ml-100k"
MODELS = ("SASRec", "BERT4Rec")  # RecBole's class names; ours are the same models


def setup(_: argparse.Namespace) -> None:
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", *PINS], check=True)
    subprocess.run(
        [str(VENV_PY), "-c", "import recbole; print('recbole', recbole.__version__)"], check=True
    )


def _tag(model: str) -> str:
    """Result-name part of a RecBole model: '' for SASRec (the first comparison), else
    '-bert4rec'."""
    return "" if model == "SASRec" else f"-{model.lower()}"


def _names(smoke: bool) -> tuple[str, Path]:
    """The atomic dataset name and the cases file (a smoke test uses 60 users)."""
    suffix = "_smoke" if smoke else ""
    return ATOMIC + suffix, DATA / f"cases{suffix}.json"


def export(smoke: bool) -> Path:
    """Write our ML-100k and its eval cases for the RecBole worker."""
    ds = common.prepare_dataset(DATASET)
    atomic, path = _names(smoke)
    folder = DATA / atomic
    folder.mkdir(parents=True, exist_ok=True)
    inter = ds.interactions
    last_user = SMOKE_USERS if smoke else inter.n_users
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for row in range(len(inter)):  # rows are grouped by user, in sequence order
        if int(inter.user_idx[row]) > last_user:
            break
        user = inter.user_id_at(int(inter.user_idx[row]))
        lines.append(f"{user}\t{ds.catalog.id_at(int(inter.item_idx[row]))}\t{row}")
    (folder / f"{atomic}.inter").write_text("\n".join(lines) + "\n")
    cases = {}
    for split in ("valid", "test"):
        cs = [c for c in ds.split.cases(split) if c.user_idx <= last_user]
        cases[split] = {
            "users": [inter.user_id_at(c.user_idx) for c in cs],
            "histories": [ds.catalog.ids_at(c.history) for c in cs],
            "targets": [ds.catalog.id_at(c.target) for c in cs],
        }
    payload = {"fingerprint": ds.fingerprint, "item_ids": ds.catalog.item_ids, "cases": cases}
    path.write_text(json.dumps(payload))
    return path


def recbole(args: argparse.Namespace) -> None:
    if not VENV_PY.exists():
        sys.exit("run `python benchmarks/sasrec_vs_recbole.py setup` first")
    export(args.smoke)
    cmd = [str(VENV_PY), __file__, "_worker", "--cap-min", str(args.cap_min), "--model", args.model]
    if args.smoke:
        cmd.append("--smoke")
    if args.from_log:
        cmd += ["--from-log", str(Path(args.from_log).resolve())]
    env = {**os.environ, "PYTHONPATH": ""}
    sys.exit(subprocess.run(cmd, env=env, cwd=common.WORK, check=False).returncode)


class CapReached(Exception):
    pass


def worker(args: argparse.Namespace) -> None:
    """Runs in RecBole's venv: train RecBole's SASRec, score our cases, save everything."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model import sequential_recommender
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    started = time.time()
    atomic, cases_path = _names(args.smoke)
    cases = json.loads(cases_path.read_text())
    config = Config(
        model=args.model,
        dataset=atomic,
        config_dict={
            "data_path": str(DATA),
            "checkpoint_dir": str(common.WORK / "recbole-saved"),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "mode": "full",
                "group_by": "user",
            },
            "metrics": ["Hit", "NDCG", "MRR"],
            "topk": [10, 20, 50],
            "valid_metric": "NDCG@10",
            "use_gpu": False,
            "show_progress": False,
            **({"epochs": 1} if args.smoke else {}),
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    n_check = _check_same_split(dataset, valid_data, test_data, cases)
    model_class = getattr(sequential_recommender, args.model)
    model = model_class(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)

    if args.from_log:
        run = _run_from_log(Path(args.from_log))
        trainer.saved_model_file = run.pop("checkpoint")
        _score_and_save(args, config, dataset, model, trainer, valid_data, test_data, cases, run,
                        started, n_check)  # fmt: skip
        return
    cap_s = args.cap_min * 60
    log: list[dict] = []
    fit_start = time.time()
    best = {"epoch": -1, "at": 0.0}

    def on_epoch(epoch: int, valid_score: float) -> None:
        now = time.time() - fit_start
        if trainer.best_valid_score == valid_score:
            best.update(epoch=epoch, at=now)
        log.append(
            {
                "epoch": epoch + 1,
                "valid_ndcg10": valid_score,
                "elapsed_s": now,
                "load_avg_1min": os.getloadavg()[0],
            }
        )
        per_epoch = now / len(log)
        if now + per_epoch > cap_s:
            raise CapReached

    stopped = "early_stopping"
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=on_epoch)
        if len(log) == config["epochs"]:
            stopped = "max_epochs"
    except CapReached:
        stopped = f"time_cap_{args.cap_min}min"
    fit_s = time.time() - fit_start
    run = {
        "stopped": stopped,
        "epochs_run": len(log),
        "best_epoch": best["epoch"] + 1,
        "seconds_to_best": best["at"],
        "fit_seconds": fit_s,
        "seconds_per_epoch": fit_s / max(len(log), 1),
        "epochs": log,
    }
    _score_and_save(args, config, dataset, model, trainer, valid_data, test_data, cases, run,
                    started, n_check)  # fmt: skip


def _run_from_log(path: Path) -> dict:
    """How a RecBole training went, read back from its log: for a run that ended before it
    could write its results (e.g. killed). The best epoch's checkpoint is the last one the log
    says it saved."""
    import re

    text = path.read_text()
    train_s = [float(t) for t in re.findall(r"epoch \d+ training \[time: ([\d.]+)s", text)]
    eval_s = [float(t) for t in re.findall(r"epoch \d+ evaluating \[time: ([\d.]+)s", text)]
    scores = [float(v) for v in re.findall(r"valid_score: ([\d.]+)", text)]
    saved = re.findall(r"Saving current: (\S+)", text)
    n = min(len(train_s), len(eval_s), len(scores))
    if n == 0 or not saved:
        raise SystemExit(f"{path}: no finished epoch or saved checkpoint in this log")
    ends = [sum(train_s[: i + 1]) + sum(eval_s[: i + 1]) for i in range(n)]
    best = max(range(n), key=lambda i: (scores[i], -i))
    return {
        "stopped": f"ended from outside after epoch {n} (no early stop, under the cap)",
        "epochs_run": n,
        "best_epoch": best + 1,
        "seconds_to_best": ends[best],
        "fit_seconds": ends[-1],
        "seconds_per_epoch": ends[-1] / n,
        "epochs": [
            {"epoch": i + 1, "valid_ndcg10": scores[i], "elapsed_s": ends[i]} for i in range(n)
        ],
        "from_log": str(path),
        "checkpoint": saved[-1],
    }


def _score_and_save(args, config, dataset, model, trainer, valid_data, test_data, cases, run,  # type: ignore[no-untyped-def]
                    started, n_check) -> None:  # fmt: skip
    """Load the best checkpoint, score our valid/test cases with it and save the results."""
    import numpy as np
    import torch
    from recbole.data.interaction import Interaction

    ckpt = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["state_dict"])
    model.load_other_parameter(ckpt.get("other_parameter"))
    own_valid = trainer.evaluate(valid_data, load_best_model=False)
    own_test = trainer.evaluate(test_data, load_best_model=False)

    model.eval()
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    item_ids = cases["item_ids"]
    known = dataset.field2token_id["item_id"]  # items RecBole saw; others keep -inf
    ours_idx = np.array([j + 1 for j, i in enumerate(item_ids) if i in known])
    rb_idx = np.array([known[i] for i in item_ids if i in known])
    scores = {}
    with torch.no_grad():
        for split in ("valid", "test"):
            hist = cases["cases"][split]["histories"]
            out = np.full((len(hist), len(item_ids) + 1), -np.inf, dtype=np.float32)
            for start in range(0, len(hist), 256):
                chunk = [
                    [dataset.token2id("item_id", i) for i in h][-max_len:]
                    for h in hist[start : start + 256]
                ]
                seq = torch.zeros(len(chunk), max_len, dtype=torch.long)
                for r, h in enumerate(chunk):
                    seq[r, : len(h)] = torch.tensor(h)  # RecBole: items first, padding after
                inter = Interaction(
                    {"item_id_list": seq, "item_length": torch.tensor([len(h) for h in chunk])}
                )
                rb_scores = model.full_sort_predict(inter).numpy()
                out[start : start + len(chunk), ours_idx] = rb_scores[:, rb_idx]
            scores[split] = out
    smoke = _tag(args.model) + ("-smoke" if args.smoke else "")
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(common.RESULTS / f"recbole{smoke}_scores.npz", **scores)
    common.write_result(
        f"recbole{smoke}",
        {
            "fingerprint": cases["fingerprint"],
            "checked_users": n_check,
            **run,
            "total_seconds": time.time() - started,
            "peak_rss_mib": common.peak_rss_mib(),
            "own_metrics": {"valid": dict(own_valid), "test": dict(own_test)},
            "settings": {
                k: config[k]
                for k in (
                    "MAX_ITEM_LIST_LENGTH",
                    "hidden_size",
                    "n_layers",
                    "n_heads",
                    "hidden_dropout_prob",
                    "learning_rate",
                    "train_batch_size",
                    "stopping_step",
                    "epochs",
                    "seed",
                )
            }
            | ({"mask_ratio": config["mask_ratio"]} if args.model == "BERT4Rec" else {}),
            "threads": torch.get_num_threads(),
            "machine": common.machine(),
        },
    )


def _check_same_split(dataset, valid_data, test_data, cases) -> int:  # type: ignore[no-untyped-def]
    """Every user's valid and test target and history must be ours; returns users checked."""
    checked = 0
    for split, loader in (("valid", valid_data), ("test", test_data)):
        feat = loader._dataset.inter_feat
        users = dataset.id2token("user_id", feat["user_id"].numpy())
        targets = dataset.id2token("item_id", feat["item_id"].numpy())
        lengths = feat["item_length"].numpy()
        lists = feat["item_id_list"].numpy()
        ours = cases["cases"][split]
        expected = dict(
            zip(ours["users"], zip(ours["targets"], ours["histories"], strict=True), strict=True)
        )
        if len(users) != len(expected):
            raise SystemExit(f"{split}: RecBole has {len(users)} users, we have {len(expected)}")
        for u, t, n, row in zip(users, targets, lengths, lists, strict=True):
            target, history = expected[str(u)]
            seen = list(dataset.id2token("item_id", row[:n]))
            if str(t) != target or seen != history[-len(seen) :]:
                raise SystemExit(f"{split}: user {u} differs from our split")
            checked += 1
    return checked


def ours(args: argparse.Namespace) -> None:
    from recagent.evals.fullrank import rank_cases
    from recagent.metrics import summarize
    from recagent.models.checkpoint import load_scorer
    from recagent.models.registry import spec
    from recagent.models.train import train_model
    from recagent.workspace import Workspace

    name = args.model.lower()
    ds = common.prepare_dataset(DATASET)
    tag = _tag(args.model)
    ws = Workspace(common.WORK / f"home-ours{tag}-seed{args.seed}")  # its own checkpoint
    model_spec = spec(name)
    config, options = model_spec.config(), model_spec.train_type(seed=args.seed)
    machine = common.machine()
    result = train_model(name, ds, config, options, ws, replace=True)
    scorer = load_scorer(ws, ds, name)
    metrics = {s: summarize(rank_cases(scorer, ds.split.cases(s))) for s in ("valid", "test")}
    common.write_result(
        f"ours-ml100k{tag}-seed{args.seed}",
        {
            "seed": args.seed,
            **common.training_record(result, config, options),
            "metrics": metrics,
            "machine": machine,
        },
    )


def report(args: argparse.Namespace) -> None:
    import numpy as np

    from recagent.evals.fullrank import rank_cases
    from recagent.metrics import summarize, target_ranks
    from recagent.models.popularity import PopularityScorer

    ds = common.prepare_dataset(DATASET)
    tag = _tag(args.model)
    ours_runs = common.read_results(f"ours-ml100k{tag}-seed")
    if not ours_runs:  # the same model's runs from models_bench.py (same data, split, defaults)
        ours_runs = [
            {**r, "metrics": {"valid": r["valid"], "test": r["test"]}}
            for r in common.read_results(f"models-ml-100k-{args.model.lower()}-seed")
            if "test" in r
        ]
    rb = json.loads((common.RESULTS / f"recbole{tag}.json").read_text())
    if rb["fingerprint"] != ds.fingerprint:
        raise SystemExit("RecBole ran on other data; rerun `recbole`")
    with np.load(common.RESULTS / f"recbole{tag}_scores.npz") as npz:
        rb_scores = {s: npz[s] for s in ("valid", "test")}
    rb_metrics = {}
    for split in ("valid", "test"):
        cs = ds.split.cases(split)
        ranks = target_ranks(rb_scores[split], [c.target for c in cs], [c.history for c in cs])
        rb_metrics[split] = summarize(ranks)
    pop = PopularityScorer.from_dataset(ds)
    pop_test = summarize(rank_cases(pop, ds.split.cases("test")))

    def med(key: str, split: str = "test") -> float:
        return common.median([r["metrics"][split][key] for r in ours_runs])

    def med_run(key: str) -> float:
        return common.median([r[key] for r in ours_runs])

    rows = [
        ("test NDCG@10", med("NDCG@10"), rb_metrics["test"]["NDCG@10"], pop_test["NDCG@10"]),
        ("test HR@10", med("HR@10"), rb_metrics["test"]["HR@10"], pop_test["HR@10"]),
        ("test NDCG@50", med("NDCG@50"), rb_metrics["test"]["NDCG@50"], pop_test["NDCG@50"]),
        ("test MRR", med("MRR"), rb_metrics["test"]["MRR"], pop_test["MRR"]),
        ("valid NDCG@10", med("NDCG@10", "valid"), rb_metrics["valid"]["NDCG@10"], None),
        (
            "wall time to best valid epoch (s)",
            med_run("seconds_to_best"),
            rb["seconds_to_best"],
            None,
        ),
        ("seconds per epoch", med_run("seconds_per_epoch"), rb["seconds_per_epoch"], None),
        ("peak memory (MiB)", med_run("peak_rss_mib"), rb["peak_rss_mib"], None),
    ]
    print(
        f"ours: {len(ours_runs)} seeds ({', '.join(str(r['seed']) for r in ours_runs)}), "
        f"median; RecBole: 1 run, stopped by {rb['stopped']} after {rb['epochs_run']} epochs "
        f"(best epoch {rb['best_epoch']})\n"
    )
    print("| | ours (median of seeds) | RecBole 1.2.1 | ours / RecBole | popularity |")
    print("|---|---|---|---|---|")
    for name, a, b, p in rows:
        ratio = f"{a / b:.2f}" if b else "-"
        fmt = "{:.4f}" if a < 10 else "{:,.0f}"
        pop_cell = "-" if p is None else f"{p:.4f}"
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} | {pop_cell} |")
    own = rb["own_metrics"]["test"]
    print(
        f"\nRecBole's own test numbers (history not excluded): NDCG@10 {own['ndcg@10']:.4f}, "
        f"HR@10 {own['hit@10']:.4f}"
    )
    for r in ours_runs:
        t = r["metrics"]["test"]
        print(
            f"ours seed {r['seed']}: test NDCG@10 {t['NDCG@10']:.4f} HR@10 {t['HR@10']:.4f}, "
            f"best epoch {r['best_epoch']}/{r['epochs_run']}, {r['seconds_to_best']:.0f} s to "
            f"best, {r['seconds_per_epoch']:.1f} s/epoch, load {r['machine']['load_avg']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("setup").set_defaults(run=setup)
    for step, run in (("recbole", recbole), ("_worker", worker)):
        p = sub.add_parser(step)
        p.add_argument("--cap-min", type=float, default=60.0, help="training time cap")
        p.add_argument("--smoke", action="store_true", help="60 users, 1 epoch: check the steps")
        p.add_argument(
            "--from-log",
            help="skip training: score the best checkpoint of the run this RecBole log records",
        )
        p.add_argument("--model", choices=MODELS, default="SASRec")
        p.set_defaults(run=run)
    p = sub.add_parser("ours")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=MODELS, default="SASRec")
    p.set_defaults(run=ours)
    p = sub.add_parser("report")
    p.add_argument("--model", choices=MODELS, default="SASRec")
    p.set_defaults(run=report)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
