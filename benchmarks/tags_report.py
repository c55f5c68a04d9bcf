"""The tags protocol's tables for RESULTS.md, from one run: each space's NDCG@10 / Recall@50 with
a 95% bootstrap interval, the paired difference of every space against `plain` over the tags,
and the per-tag table of wins and losses.

    RECAGENT_HOME=... python benchmarks/tags_report.py <run_id>
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from recagent.metrics import ndcg_of_list, recall


def boot(values: np.ndarray, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    run = Path(os.environ.get("RECAGENT_HOME", ".")) / "runs" / sys.argv[1]
    records = [json.loads(x) for x in (run / "per_user.jsonl").read_text().splitlines() if x]
    by: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        by[r["pipeline"]][r["user_id"]] = r
    tags = sorted(by["plain"])
    metric = {
        space: {
            t: (ndcg_of_list(r["items"], set(r["gold"]), 10), recall(r["items"], r["gold"], 50))
            for t, r in rows.items()
        }
        for space, rows in by.items()
    }
    print("| space | tags | NDCG@10 [95% CI] | Recall@50 [95% CI] |")
    print("|---|---|---|---|")
    for space in by:
        nd = np.array([metric[space][t][0] for t in tags])
        rc = np.array([metric[space][t][1] for t in tags])
        (a, b), (c, d) = boot(nd), boot(rc)
        print(
            f"| {space} | {len(tags)} | {nd.mean():.4f} [{a:.4f}, {b:.4f}] | "
            f"{rc.mean():.4f} [{c:.4f}, {d:.4f}] |"
        )
    print(
        "\n| vs plain | NDCG@10 delta [95% CI] | Recall@50 delta [95% CI] | wins / ties / losses |"
    )
    print("|---|---|---|---|")
    for space in by:
        if space == "plain":
            continue
        dn = np.array([metric[space][t][0] - metric["plain"][t][0] for t in tags])
        dr = np.array([metric[space][t][1] - metric["plain"][t][1] for t in tags])
        (a, b), (c, d) = boot(dn), boot(dr)
        wins, losses = int((dn > 1e-12).sum()), int((dn < -1e-12).sum())
        print(
            f"| {space} | {dn.mean():+.4f} [{a:+.4f}, {b:+.4f}] | {dr.mean():+.4f} "
            f"[{c:+.4f}, {d:+.4f}] | {wins} / {len(tags) - wins - losses} / {losses} |"
        )
    spaces = list(by)
    print("\n| tag | movies | " + " | ".join(f"{s} NDCG@10" for s in spaces) + " |")
    print("|---|---|" + "---|" * len(spaces))
    best = metric.get("knowledge", metric["plain"])
    order = sorted(tags, key=lambda t: metric["plain"][t][0] - best[t][0])
    for t in order:
        cells = " | ".join(f"{metric[s][t][0]:.3f}" for s in spaces)
        print(f"| {t} | {len(by['plain'][t]['gold'])} | {cells} |")


if __name__ == "__main__":
    main()
