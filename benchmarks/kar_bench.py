"""KAR through the adaptor: the default model (SASRec, text-aligned) trained with and without the
LLM's item knowledge in the text it aligns with, test NDCG@10 over seeds, split by whether the
target item has knowledge.

Each arm is its own workspace (a copy of the prepared dataset, and in the knowledge arm the
knowledge store), so the two never share a checkpoint or an index:

    python benchmarks/kar_bench.py run --arm plain --seeds 0 1 2
    python benchmarks/kar_bench.py run --arm knowledge --seeds 0 1 2
    python benchmarks/kar_bench.py report

The plain arm aligns with `title_genres_text` (the default template), the knowledge arm with
`title_genres_text_knowledge` (the same plus the knowledge). Results:
`benchmarks/.work/kar/<arm>-seed<s>.json` (per-user ranks and whether the target has
knowledge).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).parent / ".work" / "kar"
TEMPLATES = {"plain": "title_genres_text", "knowledge": "title_genres_text_knowledge"}


def _recagent(home: Path, template: str, *args: str) -> str:
    env = {**os.environ, "RECAGENT_HOME": str(home), "RECAGENT_INDEX__TEMPLATE": template}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    out = subprocess.run(
        [sys.executable, "-m", "recagent", *args], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"recagent {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def workspace(arm: str, source: Path, dataset: str) -> Path:
    home = WORK / f"home-{arm}"
    if not (home / "datasets" / dataset).is_dir():
        (home / "datasets").mkdir(parents=True, exist_ok=True)
        shutil.copytree(source / "datasets" / dataset, home / "datasets" / dataset)
    if arm == "knowledge":
        (home / "knowledge").mkdir(parents=True, exist_ok=True)
        store = source / "knowledge" / f"{dataset}.sqlite"
        shutil.copy2(store, home / "knowledge" / store.name)
    return home


def run(arm: str, seeds: list[int], source: Path, dataset: str) -> None:
    home = workspace(arm, source, dataset)
    for seed in seeds:
        started = time.perf_counter()
        _recagent(
            home, TEMPLATES[arm], "train", "sasrec", "-d", dataset, "--seed", str(seed),
            "--replace",  # each seed's own model, not the best so far (that would select)
        )  # fmt: skip
        trained = time.perf_counter() - started
        _recagent(
            home, TEMPLATES[arm], "eval", "run", "-d", dataset, "--protocol", "full-rank",
            "--pipelines", "sasrec", "--split", "test", "--k", "10",
        )  # fmt: skip
        runs = sorted((home / "runs").iterdir())
        records = [json.loads(x) for x in (runs[-1] / "per_user.jsonl").read_text().splitlines()]
        out = {
            "arm": arm,
            "seed": seed,
            "template": TEMPLATES[arm],
            "train_s": round(trained, 1),
            "users": [
                {"user": r["user_idx"], "rank": r["rank"], "target": r["target"]} for r in records
            ],
        }
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / f"{arm}-seed{seed}.json").write_text(json.dumps(out))
        print(f"{arm} seed {seed}: trained in {trained:.0f} s", flush=True)


def ndcg10(ranks: list[float | None]) -> np.ndarray:
    r = np.array([np.inf if x is None else x for x in ranks], dtype=float)
    return np.where(r <= 10, 1.0 / np.log2(r + 1), 0.0)


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    diff = b - a
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def known_items(source: Path, dataset: str) -> set[str]:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from recagent.data.dataset import Dataset
    from recagent.workspace import Workspace

    catalog = Dataset.load(Workspace(source), dataset).catalog
    return {it.item_id for it in catalog if it.knowledge}


def report(source: Path, dataset: str) -> None:
    known = known_items(source, dataset)
    rows = []
    for plain in sorted(WORK.glob("plain-seed*.json")):
        other = WORK / plain.name.replace("plain", "knowledge")
        if not other.is_file():
            continue
        a, b = json.loads(plain.read_text()), json.loads(other.read_text())
        ua = {u["user"]: u for u in a["users"]}
        ub = {u["user"]: u for u in b["users"]}
        users = sorted(ua.keys() & ub.keys())
        for subset in ("all", "known", "unknown"):
            pick = [
                u for u in users
                if subset == "all" or ((ua[u]["target"] in known) == (subset == "known"))
            ]  # fmt: skip
            x = ndcg10([ua[u]["rank"] for u in pick])
            y = ndcg10([ub[u]["rank"] for u in pick])
            d, lo, hi = paired(x, y)
            rows.append((a["seed"], subset, len(pick), x.mean(), y.mean(), d, lo, hi))
    print("| seed | targets | users | plain NDCG@10 | knowledge NDCG@10 | delta [95% CI] |")
    print("|---|---|---|---|---|---|")
    for seed, subset, n, x, y, d, lo, hi in rows:
        print(f"| {seed} | {subset} | {n} | {x:.4f} | {y:.4f} | {d:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    for subset in ("all", "known", "unknown"):
        xs = [r[3] for r in rows if r[1] == subset]
        ys = [r[4] for r in rows if r[1] == subset]
        if xs:
            print(f"median over seeds, {subset}: plain {np.median(xs):.4f}, "
                  f"knowledge {np.median(ys):.4f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--arm", choices=sorted(TEMPLATES), required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep = sub.add_parser("report")
    for p in (r, rep):
        p.add_argument("--source", type=Path, default=Path(os.environ.get("RECAGENT_HOME", ".")))
        p.add_argument("--dataset", default="ml-latest-small")
    args = parser.parse_args()
    if args.cmd == "run":
        run(args.arm, args.seeds, args.source, args.dataset)
    else:
        report(args.source, args.dataset)


if __name__ == "__main__":
    main()
