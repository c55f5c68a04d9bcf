"""`recagent data prepare`: load a source, filter it, order it and commit it to the workspace.

Steps, in order: drop interactions below `min_rating`; order each user's interactions by time
(ties by file order, or by item id); drop repeats of a (user, item) pair, keeping the first;
apply the k-core filter until stable; index users and items; write atomically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.catalog import Catalog
from recagent.data.dataset import Dataset, content_fingerprint
from recagent.data.download import ARCHIVES, fetch_archive
from recagent.data.generic import GenericConfig, load_generic
from recagent.data.interactions import Interactions
from recagent.data.movielens import load_ml1m, load_ml100k, load_ml_csv
from recagent.data.source import RawData
from recagent.data.stats import dataset_stats
from recagent.data.textfile import shown
from recagent.errors import ConfigError, DataError
from recagent.manifest import Manifest, file_sha256
from recagent.progress import Reporter, SilentReporter
from recagent.workspace import Workspace, check_name

Loader = Callable[[Path], RawData]
LOADERS: dict[str, tuple[Loader, str]] = {
    "ml-100k": (load_ml100k, "u.data"),
    "ml-1m": (load_ml1m, "ratings.dat"),
    "ml-10m": (load_ml1m, "ratings.dat"),
    "ml-20m": (load_ml_csv, "ratings.csv"),
    "ml-25m": (load_ml_csv, "ratings.csv"),
    "ml-32m": (load_ml_csv, "ratings.csv"),
    "ml-latest": (load_ml_csv, "ratings.csv"),
    "ml-latest-small": (load_ml_csv, "ratings.csv"),
}
_INT_IDS = re.compile(r"^-?\d+$")


class PrepareConfig(BaseModel):
    """Everything that decides the prepared data (recorded in its manifest)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        description="Source format: a MovieLens release, or any name with generic."
    )
    name: str | None = Field(None, description="Workspace name (default: dataset).")
    source: Path | None = None
    min_rating: float | None = None
    min_user_interactions: int = Field(0, ge=0)
    min_item_interactions: int = Field(0, ge=0)
    tie_break: Literal["file", "item"] = "file"
    keep_repeats: bool = False
    strict: bool = Field(False, description="Unknown item ids are an error, not skipped.")
    generic: GenericConfig | None = None

    @property
    def target_name(self) -> str:
        return check_name(self.name or self.dataset, "dataset name")


def _id_order(ids: np.ndarray) -> np.ndarray:
    """Positions that sort `ids` numerically when they are all integers, else as text."""
    if len(ids) and all(_INT_IDS.match(str(i)) for i in ids):
        return np.argsort(ids.astype(np.int64), kind="stable")
    return np.argsort(ids, kind="stable")


def _resolve_source(
    cfg: PrepareConfig, workspace: Workspace, mirror: str | None, report: Reporter
) -> Path:
    loader_file = LOADERS[cfg.dataset][1]
    if cfg.source is None:
        with report.stage(f"downloading {cfg.dataset}") as advance:
            last = [0]

            def on_bytes(done: int, total: int | None) -> None:
                advance(done - last[0])
                last[0] = done

            return fetch_archive(cfg.dataset, workspace.downloads_dir, mirror, on_bytes)
    folder = cfg.source.expanduser()
    if not folder.is_dir():
        raise DataError(folder, "--source must be a folder holding the dataset's files")
    if not (folder / loader_file).is_file():
        nested = [folder / a.folder for a in ARCHIVES.values()] + [folder / cfg.dataset]
        for candidate in nested:
            if (candidate / loader_file).is_file():
                return candidate
    return folder


def load_source(
    cfg: PrepareConfig,
    workspace: Workspace,
    mirror: str | None = None,
    report: Reporter | None = None,
) -> RawData:
    report = report or SilentReporter()
    if cfg.generic is not None:
        with report.stage("reading items and interactions"), _read_errors():
            return load_generic(cfg.generic)
    if cfg.dataset not in LOADERS:
        known = ", ".join(LOADERS)
        raise ConfigError(
            f"unknown dataset {cfg.dataset!r} (known: {known}); for your own data pass "
            "--items FILE and --interactions FILE"
        )
    folder = _resolve_source(cfg, workspace, mirror, report)
    loader = LOADERS[cfg.dataset][0]
    with report.stage(f"reading {folder}"), _read_errors():
        return loader(folder)


@contextmanager
def _read_errors() -> Iterator[None]:
    """A file that fails while being read (removed, unreadable, a disk error) is a
    `DataError` naming it, like every other problem with the input."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataError(exc.filename or "input", f"cannot read it ({reason})") from None


def build(raw: RawData, cfg: PrepareConfig) -> tuple[Catalog, Interactions, dict, list[str]]:
    """Filter, order and index `raw`: the catalog, interactions, filter counts, warnings."""
    counts: dict[str, int] = {"raw_interactions": len(raw.user_id)}
    item_ids = np.array([it.item_id for it in raw.items], dtype=str)
    item_pos = pd.Index(item_ids).get_indexer(raw.item_id)
    unknown = item_pos < 0
    warnings: list[str] = []
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        where = f"{raw.interactions_path}, line {raw.line_of_row(row)}"
        what = f"item id {shown(str(raw.item_id[row]))} is not in the items file"
        if cfg.strict:
            raise DataError(
                raw.interactions_path,
                f"{what} ({int(unknown.sum())} such interactions)",
                raw.line_of_row(row),
            )
        warnings.append(
            f"{where}: {what}; skipped {int(unknown.sum())} interaction(s) with unknown items "
            "(--strict makes this an error)"
        )
    keep = ~unknown
    counts["dropped_unknown_items"] = int(unknown.sum())
    if cfg.min_rating is not None:
        if raw.rating is None:
            raise ConfigError("--min-rating was given but the interactions have no ratings")
        low = raw.rating < cfg.min_rating
        counts["dropped_low_rating"] = int((low & keep).sum())
        keep &= ~low
    rows = np.flatnonzero(keep)

    users = np.unique(raw.user_id[rows])
    users = users[_id_order(users)]
    user_code = pd.Index(users).get_indexer(raw.user_id[rows])
    time = raw.timestamp[rows] if raw.timestamp is not None else rows
    keys = [time, user_code]  # np.lexsort: the last key is the primary one
    if cfg.tie_break == "item":
        item_rank = np.empty(len(item_ids), dtype=np.int64)
        item_rank[_id_order(item_ids)] = np.arange(len(item_ids))
        keys.insert(0, item_rank[item_pos[rows]])
    rows = rows[np.lexsort(keys)]  # stable: equal keys keep file order

    if not cfg.keep_repeats:
        pairs = pd.DataFrame({"u": raw.user_id[rows], "i": item_pos[rows]})
        repeat = pairs.duplicated(keep="first").to_numpy()
        counts["dropped_repeats"] = int(repeat.sum())
        rows = rows[~repeat]

    rows = _k_core(rows, raw.user_id, item_pos, cfg, counts)
    if len(rows) == 0:
        raise ConfigError("no interactions left after filtering; relax the filters")

    kept_items = np.arange(len(item_ids))
    if cfg.min_item_interactions > 0:
        kept_items = np.unique(item_pos[rows])  # ascending: keeps the file order
    new_pos = np.full(len(item_ids), -1, dtype=np.int64)
    new_pos[kept_items] = np.arange(len(kept_items))
    catalog = Catalog([raw.items[i] for i in kept_items])

    users = np.unique(raw.user_id[rows])
    users = users[_id_order(users)]
    user_idx = pd.Index(users).get_indexer(raw.user_id[rows]) + 1
    order = np.argsort(user_idx, kind="stable")  # group by user, keep sequence order
    rows, user_idx = rows[order], user_idx[order]
    interactions = Interactions(
        user_ids=users.astype(str),
        user_idx=user_idx.astype(np.int32),
        item_idx=(new_pos[item_pos[rows]] + 1).astype(np.int32),
        rating=(raw.rating[rows] if raw.rating is not None else np.full(len(rows), np.nan)).astype(
            np.float32
        ),
        timestamp=np.asarray(time_of(raw, rows), dtype=np.int64),
        has_ratings=raw.rating is not None,
        has_timestamps=raw.timestamp is not None,
    )
    return catalog, interactions, counts, warnings


def time_of(raw: RawData, rows: np.ndarray) -> np.ndarray:
    return raw.timestamp[rows] if raw.timestamp is not None else rows


def _k_core(
    rows: np.ndarray,
    user_id: np.ndarray,
    item_pos: np.ndarray,
    cfg: PrepareConfig,
    counts: dict[str, int],
) -> np.ndarray:
    """Drop users and items below their minimum counts, repeatedly, until nothing changes."""
    mu, mi = cfg.min_user_interactions, cfg.min_item_interactions
    if mu <= 1 and mi <= 1:
        return rows
    before = len(rows)
    users = pd.factorize(user_id[rows])[0]
    items = item_pos[rows]
    rounds = 0
    while True:
        rounds += 1
        ucount = np.bincount(users)[users]
        icount = np.bincount(items)[items]
        ok = (ucount >= mu) & (icount >= mi)
        if ok.all():
            break
        rows, users, items = rows[ok], users[ok], items[ok]
        if len(rows) == 0:
            break
    counts["dropped_k_core"] = before - len(rows)
    counts["k_core_rounds"] = rounds
    return rows


def prepare(
    cfg: PrepareConfig,
    workspace: Workspace,
    mirror: str | None = None,
    report: Reporter | None = None,
    *,
    wait: bool = True,
) -> Dataset:
    """Load, build and commit a dataset. The previous version stays live if anything fails.

    Holds the dataset's build lock: another prepare of the same name waits (or, with
    `wait=False`, is refused with `LockedError` naming this one)."""
    report = report or SilentReporter()
    with workspace.build_lock("dataset", cfg.target_name, wait=wait, reporter=report):
        return _prepare(cfg, workspace, mirror, report)


def _prepare(
    cfg: PrepareConfig, workspace: Workspace, mirror: str | None, report: Reporter
) -> Dataset:
    name = cfg.target_name
    raw = load_source(cfg, workspace, mirror, report)
    with report.stage("filtering and ordering"):
        catalog, interactions, counts, warnings = build(raw, cfg)
        warnings = [*raw.notes, *warnings]
    with report.stage("writing"), workspace.dataset(name).stage() as folder:
        dataset = Dataset(
            name,
            catalog,
            interactions,
            Manifest(kind="dataset", name=name, fingerprint=""),
            raw.users,
        )
        dataset.save(folder)
        fingerprint = content_fingerprint(folder / "items.jsonl", interactions)
        config = cfg.model_dump(mode="json")
        config["files"] = {p.name: file_sha256(p) for p in raw.files}
        stats = dataset_stats(dataset)
        manifest = Manifest(
            kind="dataset",
            name=name,
            fingerprint=fingerprint,
            config=config,
            stats={**stats.model_dump(mode="json"), "filters": counts, "warnings": warnings},
        )
        manifest.write(folder)
        dataset.manifest = manifest
    return dataset


__all__ = ["LOADERS", "PrepareConfig", "build", "load_source", "prepare"]
