"""Text alignment (CTRL-lite) for SASRec: does aligning the item table with the item text
keep next-item accuracy, help rarely seen items, and rank items never seen in training?

Variants: `plain` SASRec; `aligned` (`--align-text`); `shuffled` (the same alignment with the
text shuffled across items: the control); and, with no extra training, `plain+proj` (the plain
model with a text projection fitted on its trained table afterwards, no stage 1) and
`text-cosine` (the items' raw text vectors: cosine to the recency-weighted mean of the
history's text vectors).

Settings:
- `normal`: the usual leave-one-out split. Full-rank test NDCG@10/HR@10 (history excluded),
  overall and on test targets with < 5 training interactions.
- `heldout`: 10% of the items (popularity-stratified, seeded) are removed from training
  entirely. For each user who consumed one, the event is their last held-out item with the
  non-held-out items before it as history. The item is ranked among all held-out items
  (percentile: share of the other held-out items it beats, chance 0.5; HR@10 in that pool)
  and over the whole catalog (HR@50, history excluded).

Every choice is made on valid (training) data; test is scored once per run. `report` gives
means over seeds with bootstrap 95% intervals over users (seeds pooled, paired per user for
differences).

    export PYTHONPATH=$PWD RECAGENT_TEST_DATA=/work/shared/data OMP_NUM_THREADS=1
    for d in ml-100k ml-latest-small; do for s in 0 1 2; do for set in normal heldout; do
      for v in plain aligned shuffled; do
        python benchmarks/ctrl_bench.py run --dataset $d --setting $set --variant $v --seed $s
      done; done; done; done
    python benchmarks/ctrl_bench.py report
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

DATASETS = ("ml-100k", "ml-latest-small")
VARIANTS = ("plain", "aligned", "shuffled")
HELD_OUT = 0.1
FEW = 5  # "few training interactions": fewer than this
RECENCY = 0.9  # text-cosine: weight of a history item = RECENCY ** (items after it)
BOOTSTRAP = 2000


def dataset(name: str) -> Any:
    from recagent.data.dataset import Dataset
    from recagent.data.prepare import PrepareConfig, prepare
    from recagent.errors import ArtifactError
    from recagent.workspace import Workspace

    if name == "ml-100k":
        return common.prepare_dataset(name)
    ws = Workspace(common.HOME)
    try:
        return Dataset.load(ws, name)
    except ArtifactError:  # as /work/ws has it: every rating, no k-core filter
        config = PrepareConfig(dataset=name, source=common.SHARED / name)
        return prepare(config, ws)


def text_of(ds: Any) -> Any:
    from recagent.config import IndexConfig
    from recagent.represent.text_vectors import text_vectors
    from recagent.workspace import Workspace

    return text_vectors(Workspace(common.HOME), ds, IndexConfig())


def held_out(ds: Any, seed: int) -> tuple[Any, np.ndarray, list[tuple[np.ndarray, int]]]:
    """The dataset without 10% of its items (popularity-stratified: 10% of each popularity
    decile), those items, and one (history, item) event per user who consumed one."""
    from recagent.data.dataset import Dataset
    from recagent.data.interactions import Interactions

    counts = ds.popularity
    items = np.flatnonzero(counts[1:]) + 1
    order = items[np.argsort(counts[items], kind="stable")]
    rng = np.random.default_rng(1000 + seed)
    held = np.sort(
        np.concatenate(
            [
                rng.choice(s, size=round(HELD_OUT * len(s)), replace=False)
                for s in np.array_split(order, 10)
            ]
        )
    )
    inter = ds.interactions
    keep = ~np.isin(inter.item_idx, held)
    reduced = Interactions(
        inter.user_ids,
        inter.user_idx[keep],
        inter.item_idx[keep],
        inter.rating[keep],
        inter.timestamp[keep],
        inter.has_ratings,
        inter.has_timestamps,
    )
    manifest = ds.manifest.model_copy(update={"fingerprint": f"{ds.fingerprint}-held{seed}"})
    events = []
    for seq in inter.sequences():
        is_held = np.isin(seq, held)
        if not is_held.any():
            continue
        last = int(np.flatnonzero(is_held)[-1])
        history = seq[:last][~is_held[:last]]
        if len(history):
            events.append((history, int(seq[last])))
    return Dataset(ds.name, ds.catalog, reduced, manifest, ds.users), held, events


def plus_projection(scorer: Any, ds: Any, text: Any, seed: int) -> Any:
    """The plain model with a text projection fitted on its trained table (no stage 1), the
    rows of items without training interactions replaced by their projected text."""
    from recagent.models.align import TABLE, fill_cold_rows, fit_text_projection, paired_text
    from recagent.models.align_config import AlignConfig
    from recagent.models.sasrec_scorer import SASRecScorer

    config = AlignConfig(enabled=True)
    counts = np.bincount(np.concatenate(ds.split.train_sequences()), minlength=ds.n_items + 1)
    warm, cold = np.flatnonzero(counts[1:]) + 1, np.flatnonzero(counts[1:] == 0) + 1
    rows = paired_text(text, ds.n_items, config)
    state = {k: v.clone() for k, v in scorer.model.state_dict().items()}
    fitted, stats = fit_text_projection(state[TABLE], rows, warm, config, seed, text)
    model = type(scorer.model)(ds.n_items, scorer.model.config)
    model.load_state_dict(fill_cold_rows(state, fitted, rows, cold, warm))
    return SASRecScorer(model.eval(), scorer.item_ids, counts), stats


def text_cosine_scores(text: Any, histories: list[np.ndarray]) -> np.ndarray:
    m = text.matrix
    out = np.empty((len(histories), m.shape[0]), dtype=np.float32)
    for r, h in enumerate(histories):
        w = RECENCY ** np.arange(len(h) - 1, -1, -1, dtype=np.float32)
        q = (w[:, None] * m[h]).sum(0)
        out[r] = m @ (q / max(np.linalg.norm(q), 1e-9))
    out[:, 0] = -np.inf
    return out


def heldout_metrics(
    scores: np.ndarray, events: list[tuple[np.ndarray, int]], held: np.ndarray
) -> dict[str, list[float]]:
    from recagent.metrics import target_ranks

    targets = np.array([t for _, t in events])
    histories = [h for h, _ in events]
    pool = scores[:, held]  # (E, H)
    own = scores[np.arange(len(events)), targets][:, None]
    beaten = (pool < own).sum(1) + 0.5 * ((pool == own).sum(1) - 1)
    percentile = beaten / (len(held) - 1)
    pool_rank = 1 + (pool > own).sum(1) + ((pool == own).sum(1) - 1)  # ties: pessimistic
    full = target_ranks(scores, targets, histories)
    return {
        "percentile": percentile.tolist(),
        "pool_hr10": (pool_rank <= 10).astype(float).tolist(),
        "full_hr50": (full <= 50).astype(float).tolist(),
    }


def scores_of(scorer: Any, histories: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [scorer.score_batch(histories[i : i + 512]) for i in range(0, len(histories), 512)]
    )


def run(args: argparse.Namespace) -> None:
    import torch

    from recagent.metrics import ndcg, summarize
    from recagent.models.align_config import AlignConfig
    from recagent.models.checkpoint import load_scorer
    from recagent.models.evaluation import rank_cases
    from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
    from recagent.models.train import train_model
    from recagent.workspace import Workspace

    torch.set_num_threads(1)
    full = dataset(args.dataset)
    text = text_of(full)
    held, events = np.zeros(0, dtype=np.int64), []
    ds = full
    if args.setting == "heldout":
        ds, held, events = held_out(full, args.seed)
    align = AlignConfig(
        enabled=args.variant != "plain",
        temperature=args.temperature,
        shuffle_text=args.variant == "shuffled",
        shuffle_seed=args.seed,
    )
    config = SASRecConfig()
    options = SASRecTrainConfig(seed=args.seed, time_limit_s=args.time_limit * 60, align_text=align)
    name = f"ctrl-{args.dataset}-{args.setting}-{args.variant}{args.tag}-seed{args.seed}"
    ws = Workspace(common.WORK / f"home-{name}")
    machine = common.machine()
    result = train_model("sasrec", ds, config, options, ws, replace=True, text=text)
    scorer = load_scorer(ws, ds)
    record: dict[str, Any] = {
        "dataset": args.dataset,
        "setting": args.setting,
        "variant": args.variant,
        "tag": args.tag,
        "seed": args.seed,
        **common.training_record(result, config, options),
        "valid": result.valid,
        "alignment": result.alignment,
        "machine": machine,
    }
    scorers = {args.variant: scorer}
    if args.variant == "plain":
        scorers["plain+proj"], record["plain+proj"] = plus_projection(scorer, ds, text, args.seed)
    if args.no_test:
        record["test_skipped"] = True
    elif args.setting == "normal":
        cases = ds.split.cases("test")
        counts = np.bincount(np.concatenate(ds.split.train_sequences()), minlength=ds.n_items + 1)
        few = [bool(counts[c.target] < FEW) for c in cases]
        record["few"] = few
        record["test"] = {}
        for v, s in scorers.items():
            ranks = rank_cases(s, cases)
            record["test"][v] = {
                "summary": summarize(ranks),
                "ndcg10": ndcg(ranks, 10).tolist(),
                "hr10": (ranks <= 10).astype(float).tolist(),
            }
    else:
        histories = [h for h, _ in events]
        record["events"] = len(events)
        record["held_items"] = len(held)
        record["test"] = {
            v: heldout_metrics(scores_of(s, histories), events, held) for v, s in scorers.items()
        }
        if args.variant == "plain":
            record["test"]["text-cosine"] = heldout_metrics(
                text_cosine_scores(text, histories), events, held
            )
    common.write_result(name, record)
    print(
        f"{name}: valid NDCG@10 {result.valid['NDCG@10']:.4f}, best epoch {result.best_epoch}/"
        f"{result.epochs_run}, {result.seconds:.0f} s; "
        + "; ".join(
            f"{v}: " + ", ".join(f"{k} {np.mean(x):.4f}" for k, x in m.items() if k != "summary")
            for v, m in record.get("test", {}).items()
        )
    )


def _boot(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean and bootstrap 95% interval (resampling users)."""
    idx = rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))
    means = values[idx].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _fmt(m: tuple[float, float, float]) -> str:
    return f"{m[0]:.4f} [{m[1]:.4f}, {m[2]:.4f}]"


def report(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    runs = [r for r in common.read_results("ctrl-") if r.get("tag", "") == args.tag]
    for d in DATASETS:
        for setting in ("normal", "heldout"):
            got = [r for r in runs if r["dataset"] == d and r["setting"] == setting and "test" in r]
            if not got:
                continue
            seeds = sorted({r["seed"] for r in got})
            per: dict[str, dict[str, dict[int, np.ndarray]]] = {}
            for r in got:
                for v, m in r["test"].items():
                    for k, x in m.items():
                        if k == "summary":
                            continue
                        per.setdefault(v, {}).setdefault(k, {})[r["seed"]] = np.asarray(x)
                        if setting == "normal":
                            few = np.asarray(r["few"])
                            key = f"{k}_few"
                            per[v].setdefault(key, {})[r["seed"]] = np.asarray(x)[few]
            print(f"\n### {d}, {setting} (seeds {', '.join(map(str, seeds))})\n")
            if setting == "normal":
                few = [sum(r["few"]) for r in got if r["variant"] == "plain"]
                users = [len(r["few"]) for r in got if r["variant"] == "plain"]
                print(f"test targets with < {FEW} training interactions: {few} of {users}\n")
            else:
                print(f"events: {[r['events'] for r in got if r['variant'] == 'plain']}\n")
            metrics = sorted({k for v in per.values() for k in v})
            print("| variant | " + " | ".join(metrics) + " |")
            print("|---" * (len(metrics) + 1) + "|")
            order = [
                v for v in ("plain", "aligned", "shuffled", "plain+proj", "text-cosine") if v in per
            ]
            for v in order:
                cells = []
                for k in metrics:
                    by_seed = per[v].get(k, {})
                    if not by_seed:
                        cells.append("")
                        continue
                    cells.append(_fmt(_boot(np.concatenate(list(by_seed.values())), rng)))
                print(f"| {v} | " + " | ".join(cells) + " |")
            if setting == "heldout":
                h = next(r["held_items"] for r in got)
                print(f"| chance | percentile 0.5, pool_hr10 {10 / h:.4f} ({h} held-out items) |")
            base = "plain"
            print()
            for v in order:
                if v == base:
                    continue
                for k in metrics:
                    common_seeds = sorted(set(per[v].get(k, {})) & set(per[base].get(k, {})))
                    if not common_seeds:
                        continue
                    diff = np.concatenate([per[v][k][s] - per[base][k][s] for s in common_seeds])
                    base_mean = np.concatenate([per[base][k][s] for s in common_seeds]).mean()
                    m = _boot(diff, rng)
                    rel = m[0] / base_mean * 100 if base_mean else float("nan")
                    print(f"- {v} - {base}, {k}: {_fmt(m)} ({rel:+.1f}% relative)")
            if setting == "heldout" and "aligned" in per and "text-cosine" in per:
                for k in ("percentile", "pool_hr10", "full_hr50"):
                    s_ = sorted(set(per["aligned"][k]) & set(per["text-cosine"][k]))
                    diff = np.concatenate(
                        [per["aligned"][k][s] - per["text-cosine"][k][s] for s in s_]
                    )
                    print(f"- aligned - text-cosine, {k}: {_fmt(_boot(diff, rng))}")
                    diff = np.concatenate(
                        [
                            per["aligned"][k][s] - per["shuffled"][k][s]
                            for s in s_
                            if s in per.get("shuffled", {}).get(k, {})
                        ]
                    )
                    if len(diff):
                        print(f"- aligned - shuffled, {k}: {_fmt(_boot(diff, rng))}")
            times = {v: [r["fit_seconds"] for r in got if r["variant"] == v] for v in VARIANTS}
            print(
                "\nfit seconds (median): "
                + ", ".join(f"{v} {np.median(t):.0f}" for v, t in times.items() if t)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", choices=DATASETS, required=True)
    r.add_argument("--setting", choices=("normal", "heldout"), required=True)
    r.add_argument("--variant", choices=VARIANTS, required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--temperature", type=float, default=0.05, help="stage 1 temperature")
    r.add_argument("--time-limit", type=float, default=3.0, help="minutes per training")
    r.add_argument("--tag", default="")
    r.add_argument("--no-test", action="store_true", help="valid only (for choosing settings)")
    p = sub.add_parser("report")
    p.add_argument("--tag", default="")
    args = parser.parse_args()
    started = time.perf_counter()
    {"run": run, "report": report}[args.cmd](args)
    if args.cmd == "run":
        print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
