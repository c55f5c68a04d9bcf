"""Scoring speed of a trained SASRec: one history at a time (what a chat turn does) and
batched (what evaluation does). Training speed is measured by the quality benchmarks
(`seconds_to_best` in their results).

    flock /tmp/recagent-bench.lock python benchmarks/sasrec_speed.py [--threads 1]

Uses the seed-0 checkpoints of `sasrec_vs_recbole.py ours` (ML-100k) and
`sasrec_llamarec.py run` (ml-latest-small, 5-core); run those first.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

CHECKPOINTS = {
    "ml-100k": common.WORK / "home-ours-seed0",
    "ml-latest-small-5core": common.WORK / "home-llamarec-seed0",
}


def measure(name: str, home: Path) -> dict:
    import torch

    from recagent.metrics import target_ranks
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.workspace import Workspace

    ds = common.prepare_dataset(name)
    scorer = load_sasrec_scorer(Workspace(home), ds)
    cases = ds.split.cases("test")
    id_histories = [ds.catalog.ids_at(c.history) for c in cases]

    # one history at a time: ids in, scores of every item out
    for h in id_histories[:20]:
        scorer.score(h)
    single = []
    for h in id_histories[:300]:
        t = time.perf_counter()
        scorer.score(h)
        single.append((time.perf_counter() - t) * 1000)
    recommend = []
    for h in id_histories[:300]:
        t = time.perf_counter()
        scorer.recommend(h, 10, exclude=h)
        recommend.append((time.perf_counter() - t) * 1000)

    # batched: every test user, as evaluation does (score_batch + ranking)
    histories = [c.history for c in cases]
    targets = [c.target for c in cases]
    scorer.score_batch(histories[:64])
    rounds, t = 0, time.perf_counter()
    while time.perf_counter() - t < 5 or rounds < 3:
        scorer.score_batch(histories)
        rounds += 1
    batched = rounds * len(histories) / (time.perf_counter() - t)
    rounds, t = 0, time.perf_counter()
    while time.perf_counter() - t < 5 or rounds < 3:
        for start in range(0, len(histories), 1024):
            chunk = histories[start : start + 1024]
            target_ranks(scorer.score_batch(chunk), targets[start : start + 1024], chunk)
        rounds += 1
    ranked = rounds * len(histories) / (time.perf_counter() - t)
    return {
        "dataset": name,
        "items": ds.n_items,
        "users": len(cases),
        "history_len_median": statistics.median(len(h) for h in histories),
        "max_len": scorer.max_len,
        "threads": torch.get_num_threads(),
        "single_ms_median": statistics.median(single),
        "single_ms_p90": statistics.quantiles(single, n=10)[-1],
        "recommend10_ms_median": statistics.median(recommend),
        "batched_users_per_s": batched,
        "batched_with_ranking_users_per_s": ranked,
    }


def main() -> None:
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = common.machine()
    rows = []
    for name, home in CHECKPOINTS.items():
        if not (home / "models").is_dir():
            sys.exit(f"no checkpoint in {home}: run the quality benchmarks first")
        rows.append(measure(name, home))
    common.write_result(
        f"speed-threads{torch.get_num_threads()}", {"rows": rows, "machine": machine}
    )
    print(
        "| dataset | items | one history, median (p90) | recommend top-10 | batched | "
        "batched + ranking |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['items']:,} | {r['single_ms_median']:.2f} ms "
            f"({r['single_ms_p90']:.2f}) | {r['recommend10_ms_median']:.2f} ms | "
            f"{r['batched_users_per_s']:,.0f} users/s | "
            f"{r['batched_with_ranking_users_per_s']:,.0f} users/s |"
        )


if __name__ == "__main__":
    main()
