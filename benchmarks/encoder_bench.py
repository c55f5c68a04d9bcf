"""NoteLLM-lite item encoder vs the raw text vectors (and item-CF as a reference), item to item.

    python benchmarks/encoder_bench.py run --dataset ml-100k --seed 0 [--set lr=0.003 ...]
    python benchmarks/encoder_bench.py run --dataset ml-100k --seed 0 --withhold 0.1
    python benchmarks/encoder_bench.py report

`run` trains the encoder on the training split (alpha and epoch chosen on valid) and measures
Recall@10/50/100 of the test split's held-out pairs per popularity slice, with the encoder's
paired difference from the raw text vectors (bootstrap over users). `--withhold 0.1` is the
cold-item setting: a popularity-stratified 10% of the items never appear in the encoder's
training pairs (nor in its valid choice); every later consumption of one of them, paired with
the items its consumer had before, is the test. Results: benchmarks/.work/results/encoder-*.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

DATASETS = ("ml-100k", "ml-latest-small", "ml-latest-small-5core")


def _config(pairs: list[str], seed: int) -> Any:
    """The encoder's settings: its defaults, `key=value` overrides (JSON values: numbers,
    lists such as alphas=[0,0.1]; pairs.<key>=... for the pair builder) and the seed."""
    from recagent.represent.encoder_config import EncoderConfig

    values: dict[str, Any] = {"seed": seed}
    pair_values: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key.startswith("pairs."):
            pair_values[key.removeprefix("pairs.")] = value
        elif key in EncoderConfig.model_fields:
            values[key] = value
        else:
            raise SystemExit(f"--set {pair}: no such encoder setting")
    config = EncoderConfig.model_validate(values)
    return config.model_copy(update={"pairs": config.pairs.model_copy(update=pair_values)})


def run(args: argparse.Namespace) -> None:
    from recagent.config import IndexConfig
    from recagent.data.pairs import ItemPairs, PairsConfig
    from recagent.represent import item_to_item as i2i
    from recagent.represent.encoder import encode, load_item_encoder, train_item_encoder
    from recagent.represent.text_vectors import text_vectors
    from recagent.workspace import Workspace

    ds = common.prepare_dataset(args.dataset)
    ws = Workspace(common.HOME)
    config = _config(args.set, args.seed)
    withheld = i2i.withheld_items(ds, args.withhold, args.seed) if args.withhold else None
    started = time.monotonic()
    result = train_item_encoder(ws, ds, IndexConfig(), config, replace=True, withhold=withheld)
    seconds = time.monotonic() - started
    encoder = load_item_encoder(ws, ds, IndexConfig())
    assert encoder is not None
    raw = text_vectors(ws, ds, IndexConfig()).matrix
    spaces = [
        ("text", i2i.vector_scores(raw)),
        ("encoder", i2i.vector_scores(encode(encoder.projection, raw))),
    ]
    if withheld is None:
        cf = ItemPairs.load_or_build(ws, ds, PairsConfig(), train_only=True).matrix
        spaces.append(("item-cf", i2i.cooccurrence_scores(cf)))
        pairs = i2i.heldout_pairs(ds, "test", args.window)
        setting = "test pairs"
    else:
        pairs = i2i.withheld_pairs(ds, withheld, args.window)
        setting = f"withheld {args.withhold:.0%} of items ({len(withheld)}), {len(pairs)} pairs"
    results, versus = i2i.evaluate_spaces(ds, spaces, pairs, args.seed)
    name = f"encoder-{args.dataset}-{'withheld' if withheld is not None else 'test'}"
    common.write_result(
        f"{name}-s{args.seed}{common.tag(args.set)}",
        {
            "dataset": args.dataset,
            "seed": args.seed,
            "setting": setting,
            "withhold": args.withhold,
            "settings": args.set,
            "training": result.model_dump(),
            "train_seconds": seconds,
            "spaces": [r.model_dump() for r in results],
            "versus_text": [c.model_dump() for c in versus],
            "machine": common.machine(),
        },
    )
    for r in results:
        print(r.name, {s: round(m["R@50"], 4) for s, m in r.metrics.items()}, r.users)
    for c in versus:
        print(c.name, "-", c.baseline, {s: round(v, 4) for s, v in c.diff.items()}, c.intervals)


def report(args: argparse.Namespace) -> None:
    rows = common.read_results("encoder-")
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        kind = "withheld" if r.get("withhold") else "test"
        by.setdefault((r["dataset"], kind, ",".join(r["settings"])), []).append(r)
    print(
        "| dataset | setting | slice | users | text R@50 (median) | encoder R@50 (median) | "
        "encoder - text per seed [95% CI] | item-CF R@50 | train s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (dataset, kind, settings), runs in sorted(by.items()):
        runs.sort(key=lambda r: r["seed"])
        for s in ("all", "cold", "low", "high"):
            spaces = [{x["name"]: x for x in r["spaces"]} for r in runs]
            users = int(np.median([sp["text"]["users"][s] for sp in spaces]))
            if not users:
                continue
            text = float(np.median([sp["text"]["metrics"][s]["R@50"] for sp in spaces]))
            enc = [sp["encoder"]["metrics"][s]["R@50"] for sp in spaces]
            diffs = []
            for r in runs:
                c = r["versus_text"][0]
                lo, hi = c["intervals"][s]
                diffs.append(f"{c['diff'][s]:+.4f} [{lo:+.4f}, {hi:+.4f}]")
            cf = spaces[0].get("item-cf", {}).get("metrics", {}).get(s, {}).get("R@50")
            secs = np.median([r["train_seconds"] for r in runs])
            label = f"{kind}{' ' + settings if settings else ''}"
            print(
                f"| {dataset} | {label} | {s} | {users} | {text:.4f} | {np.median(enc):.4f} | "
                f"{'; '.join(diffs)} | {'' if cf is None else f'{cf:.4f}'} | {secs:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", choices=DATASETS, default="ml-100k")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--window", type=int, default=10)
    r.add_argument("--withhold", type=float, default=0.0)
    common.add_set_option(r)
    sub.add_parser("report")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
