"""NoteLLM-lite item encoder vs the raw text vectors (and item-CF as a reference), item to item.

    python benchmarks/encoder_bench.py run --dataset ml-100k --seed 0 [--set lr=0.003 ...]
    python benchmarks/encoder_bench.py run --dataset ml-100k --seed 0 --withhold 0.1
    python benchmarks/encoder_bench.py report
    python benchmarks/encoder_bench.py lookalike


`run` trains the encoder on the training split (alpha and epoch chosen on valid) and measures
Recall@10/50/100 of the test split's held-out pairs per popularity slice, with the encoder's
paired difference from the raw text vectors (bootstrap over users). `--withhold 0.1` is the
cold-item setting: a popularity-stratified 10% of the items never appear in the encoder's
training pairs (nor in its valid choice); every later consumption of one of them, paired with
the items its consumer had before, is the test. Results: benchmarks/.work/results/encoder-*.

Each test run also measures the blend `similar_items` searches (recagent.represent.blend,
chosen on valid for that run's encoder) and how alike each query item and its top 10 are in
every space (genre overlap, year distance); `lookalike` tabulates them with the paired
differences blend - encoder (R@50) and blend - text (genre@10).
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
    from recagent.represent.blend import blend_scores, choose_blend
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
    cowatch = encode(encoder.projection, raw)
    spaces = [("text", i2i.vector_scores(raw)), ("encoder", i2i.vector_scores(cowatch))]
    versus: list[tuple[str, str, str]] = []
    blend = None
    if withheld is None:
        started = time.monotonic()
        blend = choose_blend(ws, ds, IndexConfig(), encoder)
        blend_seconds = time.monotonic() - started
        spaces.append(("blend", blend_scores(raw, cowatch, blend.setting)))
        versus = [("blend", "encoder", "R@50"), ("blend", "text", i2i.GENRE)]
    if withheld is None:
        cf = ItemPairs.load_or_build(ws, ds, PairsConfig(), train_only=True).matrix
        spaces.append(("item-cf", i2i.cooccurrence_scores(cf)))
        pairs = i2i.heldout_pairs(ds, "test", args.window)
        setting = "test pairs"
    else:
        pairs = i2i.withheld_pairs(ds, withheld, args.window)
        setting = f"withheld {args.withhold:.0%} of items ({len(withheld)}), {len(pairs)} pairs"
    results, compared = i2i.evaluate_spaces(ds, spaces, pairs, args.seed, versus)
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
            "versus_text": [c.model_dump() for c in compared if c.baseline == "text"],
            "versus": [c.model_dump() for c in compared],
            "blend": blend.model_dump() if blend else None,
            "blend_setting": blend.setting.label if blend else None,
            "blend_seconds": blend_seconds if blend else None,
            "machine": common.machine(),
        },
    )
    for r in results:
        print(r.name, {s: round(m["R@50"], 4) for s, m in r.metrics.items()}, r.users)
    for c in compared:
        diffs = {s: round(v, 4) for s, v in c.diff.items()}
        print(c.name, "-", c.baseline, c.metric, diffs, c.intervals["all"])
    if blend:
        print("blend chosen on valid:", blend.setting.label)


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


def lookalike(args: argparse.Namespace) -> None:
    """Per dataset and seed (test pairs): R@50 of the encoder and the blend, genre@10 of the
    text space and the blend, and the paired differences; then the medians."""
    rows = [r for r in common.read_results("encoder-") if r.get("blend") and not r["withhold"]]
    print(
        "| dataset | seed | blend (chosen on valid) | encoder R@50 | blend R@50 | "
        "blend - encoder [95% CI] | ratio | text genre@10 | encoder genre@10 | "
        "blend genre@10 | blend - text [95% CI] | ratio | years@10 text / encoder / blend |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in DATASETS:
        runs = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["seed"])
        ratios: dict[str, list[float]] = {"recall": [], "genre": []}
        for r in runs:
            m = {s["name"]: s["metrics"]["all"] for s in r["spaces"]}
            vs = {(c["baseline"], c["metric"]): c for c in r["versus"] if c["name"] == "blend"}
            rec, gen = vs[("encoder", "R@50")], vs[("text", "genre@10")]
            ratio_r = m["blend"]["R@50"] / m["encoder"]["R@50"]
            ratio_g = m["blend"]["genre@10"] / m["text"]["genre@10"]
            ratios["recall"].append(ratio_r)
            ratios["genre"].append(ratio_g)
            years = " / ".join(f"{m[s]['years@10']:.1f}" for s in ("text", "encoder", "blend"))
            print(
                f"| {dataset} | {r['seed']} | {r['blend_setting']} | "
                f"{m['encoder']['R@50']:.4f} | {m['blend']['R@50']:.4f} | {_ci(rec)} | "
                f"{ratio_r:.3f} | {m['text']['genre@10']:.3f} | {m['encoder']['genre@10']:.3f} | "
                f"{m['blend']['genre@10']:.3f} | {_ci(gen)} | {ratio_g:.3f} | {years} |"
            )
        if runs:
            print(
                f"| {dataset} | median | | | | | {np.median(ratios['recall']):.3f} | | | | | "
                f"{np.median(ratios['genre']):.3f} | |"
            )


def _ci(c: dict[str, Any]) -> str:
    lo, hi = c["intervals"]["all"]
    return f"{c['diff']['all']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


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
    sub.add_parser("lookalike")
    args = parser.parse_args()
    {"run": run, "report": report, "lookalike": lookalike}[args.command](args)


if __name__ == "__main__":
    main()
