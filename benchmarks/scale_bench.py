"""recagent at 100k, 300k and 1M items: a synthetic catalog (`recagent.data.synthetic`) measured
end to end on this machine, one stage per process (so each stage's peak memory is its own).

    python benchmarks/scale_bench.py run --items 1000000 [--stages prepare,index,...]
    python benchmarks/scale_bench.py report

Stages, in order (each needs the ones before it):
  prepare  generate the CSVs (not timed), then `data prepare`: seconds, peak memory
  index    WordLlama + Chroma HNSW build of the whole catalog: seconds, peak memory
  query    200 text queries each unfiltered and with four filters: p50 / p95 ms
  pairs    the co-watch pairs (train split): seconds, peak memory
  sasrec   one SASRec epoch (sampled softmax, the default): seconds, peak memory
  score    top-10 of one history over the whole catalog (SASRec): p50 / p95 ms
  turn     the services opened, then planner turns end to end: p50 / p95 ms

Each stage writes benchmarks/.work/results/scale-<items>-<stage>.json; `report` prints the
table RESULTS.md quotes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

STAGES = ("prepare", "index", "query", "pairs", "sasrec", "score", "turn")
# Chosen for a million items on 2 cores: Chroma's own HNSW defaults (M=16, ef_construction
# 100) build ~1.5x faster than recagent's (32 / 200) at 100k; ef_search 200 at query time.
HNSW = {"hnsw_max_neighbors": 16, "hnsw_ef_construction": 100, "hnsw_ef_search": 200}
BATCH = 4096  # items embedded and upserted at once (Chroma's limit is ~5,400)
QUERIES = 200
TURNS = (
    "dark thrillers from the 80s",
    "something like {title}",
    "a funny animated film for kids",
    "more like the first one but older",
    "westerns after 1990",
)


def home(items: int) -> Path:
    return common.WORK / f"scale-{items}"


def name(items: int) -> str:
    return f"synthetic-{items // 1000}k"


def index_config(items: int) -> Any:
    from recagent.config import IndexConfig

    return IndexConfig(batch_size=BATCH, **HNSW)


def settings(items: int) -> Any:
    from recagent.config import Settings

    return Settings(home=home(items), index=index_config(items))


def dataset(items: int) -> Any:
    from recagent.data.dataset import Dataset
    from recagent.workspace import Workspace

    return Dataset.load(Workspace(home(items)), name(items))


def stage_prepare(items: int) -> dict[str, Any]:
    from recagent.data.generic import GenericConfig
    from recagent.data.prepare import PrepareConfig, prepare
    from recagent.data.synthetic import Synthetic, SyntheticConfig
    from recagent.workspace import Workspace

    source = home(items) / "source"
    started = time.perf_counter()
    synth = Synthetic(SyntheticConfig(items=items))
    items_csv, inter_csv = synth.write(source)
    generated = time.perf_counter() - started
    del synth
    started = time.perf_counter()
    generic = GenericConfig(
        items=items_csv,
        interactions=inter_csv,
        year_col="year",
        genres_col="genres",
        text_cols=["text"],
    )
    cfg = PrepareConfig(dataset=name(items), generic=generic)
    ds = prepare(cfg, Workspace(home(items)))
    return {
        "generate_s": generated,
        "prepare_s": time.perf_counter() - started,
        "users": ds.interactions.n_users,
        "items": ds.n_items,
        "interactions": len(ds.interactions),
        "disk_mib": sum(p.stat().st_size for p in source.iterdir()) / 2**20,
    }


def stage_index(items: int) -> dict[str, Any]:
    from recagent.index.embedders import make_embedder
    from recagent.index.store import build_index
    from recagent.index.text import load_template
    from recagent.progress import RichReporter
    from recagent.workspace import Workspace

    ds = dataset(items)
    cfg = index_config(items)
    embedder = make_embedder(cfg)
    sample = list(ds.catalog)[:20_000]
    texts = load_template(cfg.template).render_all(sample)
    started = time.perf_counter()
    embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    reporter = RichReporter(every_s=120)
    build_index(Workspace(home(items)), ds, cfg, embedder=embedder, reporter=reporter)
    return {
        "build_s": time.perf_counter() - started,
        "embed_items_per_s": embed_rate,
        "hnsw": HNSW,
        "batch_size": BATCH,
    }


def rss_mib() -> float:
    """Resident memory of this process now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "n": len(ms),
    }


def stage_query(items: int) -> dict[str, Any]:
    from recagent.data.constraints import Constraints
    from recagent.index.store import open_index
    from recagent.workspace import Workspace

    ds = dataset(items)
    rng = np.random.default_rng(0)
    titles = [ds.catalog.at(int(i)).title for i in rng.integers(1, ds.n_items + 1, QUERIES)]
    seen = [ds.catalog.id_at(int(i)) for i in rng.integers(1, ds.n_items + 1, 200)]
    filters: dict[str, Constraints | None] = {
        "none": None,
        "genre": Constraints(genres_any=["Horror"]),
        "genre_years": Constraints(genres_any=["Comedy", "Romance"], year_min=1990),
        "exclude_200": Constraints(exclude_ids=seen),
        "exclude_genre": Constraints(genres_none=["Drama"]),
        "rare": Constraints(genres_any=["Film-Noir"], year_max=1960),  # ~0.5% of items
    }
    started = time.perf_counter()
    index = open_index(Workspace(home(items)), ds, index_config(items))
    out: dict[str, Any] = {"open_s": time.perf_counter() - started}
    with index:
        index.search("warm up the graph", 10)
        for label, where in filters.items():
            ms = []
            for title in titles:
                t = time.perf_counter()
                hits = index.search(f"a {title} movie", 10, where)
                ms.append((time.perf_counter() - t) * 1000)
                assert hits, label
            out[label] = _percentiles(ms)
            print(label, out[label], flush=True)
    return out


def stage_pairs(items: int) -> dict[str, Any]:
    from recagent.data.pairs import ItemPairs
    from recagent.data.pairs_config import PairsConfig

    ds = dataset(items)
    started = time.perf_counter()
    pairs = ItemPairs.build(ds, PairsConfig(), train_only=True)
    return {"build_s": time.perf_counter() - started, "nnz": int(pairs.matrix.nnz)}


def stage_sasrec(items: int) -> dict[str, Any]:
    """One epoch, or as much of it as `SCALE_SASREC_LIMIT_S` seconds allow (then the epoch's
    time is extrapolated from the seconds per training step, counted here)."""
    import os

    import recagent.models.train as train_module
    from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
    from recagent.models.train import train_sasrec
    from recagent.workspace import Workspace

    steps = {"done": 0, "total": 0, "seconds": 0.0}
    real = train_module.train_epoch

    def counted(loss_module, optimizer, data, batch_size, *args, **kwargs):  # type: ignore[no-untyped-def]
        steps["total"] = sum(1 for _ in data.epoch(np.random.default_rng(0), batch_size))
        walk = data.epoch

        def epoch(rng, size):  # type: ignore[no-untyped-def]
            for batch in walk(rng, size):
                steps["done"] += 1
                yield batch

        data.epoch = epoch
        started = time.perf_counter()
        try:
            return real(loss_module, optimizer, data, batch_size, *args, **kwargs)
        finally:
            steps["seconds"] += time.perf_counter() - started
            del data.epoch

    train_module.train_epoch = counted  # type: ignore[assignment]
    limit = float(os.environ.get("SCALE_SASREC_LIMIT_S", "0")) or None
    ds = dataset(items)
    options = SASRecTrainConfig(epochs=1, seed=0, time_limit_s=limit)
    started = time.perf_counter()
    result = train_sasrec(ds, SASRecConfig(), options, Workspace(home(items)), replace=True)
    h = result.history[0]
    per_step = steps["seconds"] / max(steps["done"], 1)
    return {
        "epoch_s": h.seconds,
        "complete": h.complete,
        "steps_done": steps["done"],
        "steps_per_epoch": steps["total"],
        "train_s_per_step": per_step,
        "epoch_train_s_estimate": per_step * steps["total"],
        "wall_s": time.perf_counter() - started,
        "valid_ndcg10": h.valid_ndcg10,
        "valid_users": result.valid_users,
        "parameters_mib": (ds.n_items + 1) * SASRecConfig().dim * 4 / 2**20,
    }


def stage_score(items: int) -> dict[str, Any]:
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.workspace import Workspace

    started = time.perf_counter()
    ds = dataset(items)
    loaded = {"dataset_load_s": time.perf_counter() - started, "dataset_rss_mib": rss_mib()}
    scorer = load_sasrec_scorer(Workspace(home(items)), ds)
    cases = ds.split.cases("test")[:60]
    histories = [[ds.catalog.id_at(int(i)) for i in c.history] for c in cases]
    scorer.recommend(histories[0], 10)
    ms = []
    for history in histories[10:]:
        t = time.perf_counter()
        top = scorer.recommend(history, 10, exclude=history)
        ms.append((time.perf_counter() - t) * 1000)
        assert len(top) == 10
    return loaded | _percentiles(ms)


def stage_turn(items: int) -> dict[str, Any]:
    from recagent.app import load_services
    from recagent.workspace import Workspace

    started = time.perf_counter()
    services = load_services(Workspace(home(items)), settings(items), name(items))
    opened = time.perf_counter() - started
    ds = services.dataset
    rng = np.random.default_rng(0)
    ms, answers = [], []
    for round_ in range(4):
        session = services.session()
        title = ds.catalog.at(int(rng.integers(1, ds.n_items + 1))).title
        for message in TURNS:
            text = message.format(title=title)
            t = time.perf_counter()
            ranked = session.ask(text, k=10)
            ms.append((time.perf_counter() - t) * 1000)
            if round_ == 0:
                answers.append([text, [it.title for it in ranked.items[:3]]])
    return {"open_s": opened, **_percentiles(ms[len(TURNS) :]), "first_round": answers}


RUNNERS = {s: globals()[f"stage_{s}"] for s in STAGES}


def one_stage(stage: str, items: int) -> None:
    """Run one stage in this process and record it with this process's peak memory."""
    import torch

    torch.set_num_threads(2)
    machine = common.machine()
    result = RUNNERS[stage](items)
    result |= {"peak_rss_mib": common.peak_rss_mib(), "machine": machine, "items": items}
    common.write_result(f"scale-{items}-{stage}", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, default=str))


def run(args: argparse.Namespace) -> None:
    stages = args.stages.split(",") if args.stages else list(STAGES)
    for stage in stages:
        print(f"== {args.items:,} items: {stage}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "stage", stage, "--items", str(args.items)], check=False
        )
        print(f"   {stage}: exit {done.returncode} after {time.perf_counter() - started:.0f} s")
        if done.returncode != 0:
            raise SystemExit(done.returncode)


def report(args: argparse.Namespace) -> None:
    """Every recorded stage (a file `scale-<items>-<stage>[-<tag>].json`), by size."""
    rows = []
    for path in sorted(common.RESULTS.glob("scale-*-*.json")):
        _, items, stage, *tag = path.stem.split("-", 3)
        if stage not in STAGES or not items.isdigit():
            continue
        data = json.loads(path.read_text())
        keep = {
            k: (float(f"{v:.4g}") if isinstance(v, float) else v)
            for k, v in data.items()
            if k not in ("machine", "first_round", "items")
        }
        rows.append((int(items), STAGES.index(stage), "-".join([stage, *tag]), keep))
    for items, _, stage, keep in sorted(rows):
        print(f"{items:>9,} {stage:8} {json.dumps(keep, default=str)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("run")
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--stages", default="")
    p.set_defaults(go=run)
    p = sub.add_parser("stage")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--items", type=int, required=True)
    p.set_defaults(go=lambda a: one_stage(a.stage, a.items))
    sub.add_parser("report").set_defaults(go=report)
    args = parser.parse_args()
    args.go(args)


if __name__ == "__main__":
    main()
