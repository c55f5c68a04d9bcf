"""The shared leave-one-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.workspace import Workspace
from tests.conftest import write_ml100k


def _ids(ds: Dataset, idx: np.ndarray | int) -> list[str] | str:
    if isinstance(idx, int):
        return ds.catalog.id_at(idx)
    return ds.catalog.ids_at(idx)


def test_last_is_test_second_to_last_is_valid(tiny_ml100k: Path, workspace: Workspace) -> None:
    ds = prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), workspace)
    user = ds.interactions.user_idx_of("1")
    assert user is not None
    valid, test = ds.split.case(user, "valid"), ds.split.case(user, "test")
    assert _ids(ds, valid.history) == ["1", "2", "3"] and _ids(ds, valid.target) == "4"
    assert _ids(ds, test.history) == ["1", "2", "3", "4"] and _ids(ds, test.target) == "5"
    assert _ids(ds, ds.split.train_sequence(user)) == ["1", "2", "3"]


def test_ties_keep_file_order_in_split(tiny_ml100k: Path, workspace: Workspace) -> None:
    # user 2 rated items 3 then 1 with the same timestamp (200), in that file order
    ds = prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), workspace)
    user = ds.interactions.user_idx_of("2")
    assert user is not None
    assert _ids(ds, ds.split.full_history(user)) == ["3", "1", "2", "6"]
    assert _ids(ds, ds.split.train_sequence(user)) == ["3", "1"]


def test_short_users_only_train(tiny_ml100k: Path, workspace: Workspace) -> None:
    ds = prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), workspace)
    short = ds.interactions.user_idx_of("4")  # two interactions
    assert short is not None and short not in ds.split.eval_users
    assert _ids(ds, ds.split.train_sequence(short)) == ["2", "1"]
    assert len(ds.split.cases("test")) == 3


def test_split_is_the_same_after_reload(tmp_path: Path, workspace: Workspace) -> None:
    rng = np.random.default_rng(0)
    ratings = [
        (u, int(i), 4, int(t))
        for u in range(1, 30)
        for t, i in enumerate(rng.choice(np.arange(1, 40), 8, replace=False))
    ]
    src = write_ml100k(tmp_path / "r", ratings)
    prepare(PrepareConfig(dataset="ml-100k", source=src), workspace)
    a, b = Dataset.load(workspace, "ml-100k"), Dataset.load(workspace, "ml-100k")
    for ca, cb in zip(a.split.cases("test"), b.split.cases("test"), strict=True):
        assert ca.target == cb.target and np.array_equal(ca.history, cb.history)


def test_ml100k_split_shape(ml100k: Dataset) -> None:
    cases = ml100k.split.cases("test")
    assert len(cases) == 943
    total = sum(len(ml100k.split.train_sequence(u)) for u in range(1, 944))
    assert total == 100000 - 2 * 943
