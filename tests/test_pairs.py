"""Item pairs people consume together and popularity lately, on hand-made data with known
answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.data.popularity import SECONDS_PER_DAY, popularity
from recagent.data.prepare import PrepareConfig, prepare
from recagent.workspace import Workspace
from tests.conftest import write_ml100k

DAY = SECONDS_PER_DAY


@pytest.fixture
def tiny(tmp_path: Path) -> Dataset:
    # user 1: 1 2 3 4 5 (one day apart); user 2: 1 2; user 3: 3 6 7 6 is ignored (repeat)
    ratings = [(1, i, 5, i * DAY) for i in range(1, 6)]
    ratings += [(2, 1, 4, 10 * DAY), (2, 2, 2, 11 * DAY)]
    ratings += [(3, 3, 5, 20 * DAY), (3, 6, 5, 21 * DAY), (3, 7, 1, 22 * DAY)]
    src = write_ml100k(tmp_path / "src", ratings)
    return prepare(PrepareConfig(dataset="ml-100k", source=src), Workspace(tmp_path / "w"))


def test_pairs_known_answer(tiny: Dataset) -> None:
    pairs = ItemPairs.build(tiny, PairsConfig(window=1, damping=0.0), train_only=False)
    # window 1: neighbours in the sequence; user 1 adds 1/5, user 2 adds 1/2, user 3 1/3
    assert dict(pairs.partners("1")) == pytest.approx({"2": 1 / 5 + 1 / 2})
    assert dict(pairs.partners("3")) == pytest.approx({"2": 0.2, "4": 0.2, "6": 1 / 3})
    wide = ItemPairs.build(tiny, PairsConfig(window=4, damping=0.0), train_only=False)
    assert dict(wide.partners("1"))["5"] == pytest.approx(0.2)


def test_min_rating_damping_and_top_partners(tiny: Dataset) -> None:
    rated = ItemPairs.build(tiny, PairsConfig(window=1, min_rating=4, damping=0.0), False)
    assert dict(rated.partners("1")) == pytest.approx({"2": 0.2})  # user 2 rated item 2 low
    assert dict(rated.partners("6")) == pytest.approx({"3": 0.5})  # 7 is rated 1
    top1 = ItemPairs.build(tiny, PairsConfig(window=1, partners=1, damping=0.0), False)
    assert [i for i, _ in top1.partners("3")] == ["6"]
    damped = ItemPairs.build(tiny, PairsConfig(window=1, damping=1.0), False)
    plain = ItemPairs.build(tiny, PairsConfig(window=1, damping=0.0), False)
    # damping divides by the partner's total: item 2 (many pairs) loses most
    ratio = {i: s / dict(plain.partners("3"))[i] for i, s in damped.partners("3")}
    assert ratio["2"] < ratio["6"]


def test_train_only_leaves_out_the_held_out_items(tiny: Dataset) -> None:
    pairs = ItemPairs.build(tiny, PairsConfig(window=1, damping=0.0), train_only=True)
    # user 1 trains on 1 2 3; user 3 on 3 only; user 2 has too few items to hold any out
    assert dict(pairs.partners("3")) == pytest.approx({"2": 1 / 3})
    assert pairs.partners("6") == []


def test_related_sums_seeds_and_names_them(tiny: Dataset) -> None:
    pairs = ItemPairs.build(tiny, PairsConfig(window=1, damping=0.0), train_only=False)
    found = pairs.related(["1", "3"], k=10)
    ids = [i for i, _, _ in found]
    assert "1" not in ids and "3" not in ids
    best = found[0]
    assert best[0] == "2" and set(best[2]) == {"1", "3"}
    kept = pairs.related(["1", "3"], k=10, constraints=Constraints(exclude_ids=["2"]))
    assert "2" not in [i for i, _, _ in kept]


def test_pairs_are_cached_and_rebuilt_when_options_change(tiny: Dataset, tmp_path) -> None:
    ws = Workspace(tmp_path / "w")
    first = ItemPairs.load_or_build(ws, tiny, PairsConfig(window=1), train_only=False)
    folder = ws.models_dir(tiny.name) / "pairs"
    stamp = (folder / "pairs.npz").stat().st_mtime_ns
    again = ItemPairs.load_or_build(ws, tiny, PairsConfig(window=1), train_only=False)
    assert (folder / "pairs.npz").stat().st_mtime_ns == stamp
    assert (again.matrix != first.matrix).nnz == 0
    other = ItemPairs.load_or_build(ws, tiny, PairsConfig(window=2), train_only=False)
    assert other.matrix.nnz > first.matrix.nnz


def test_popularity_lately(tiny: Dataset) -> None:
    counts = popularity(tiny)
    assert counts[tiny.catalog.idx("1")] == 2 and counts[0] == 0
    lately = popularity(tiny, half_life_days=1)
    # the last interaction (item 7, day 22) weighs 1; item 1 (days 1 and 10) almost nothing
    assert lately[tiny.catalog.idx("7")] == pytest.approx(1.0)
    assert lately[tiny.catalog.idx("1")] < 1e-3
    held = popularity(tiny, train_only=True)
    assert held[tiny.catalog.idx("7")] == 0 and held[tiny.catalog.idx("5")] == 0
    assert np.all(held <= counts)


def test_extreme_pair_scores_are_dropped(tiny: Dataset) -> None:
    plain = ItemPairs.build(tiny, PairsConfig(window=1, damping=0.0), train_only=False)
    capped = ItemPairs.build(
        tiny, PairsConfig(window=1, damping=0.0, drop_quantile=0.9), train_only=False
    )
    # the strongest pair (1, 2: 1/5 + 1/2) is above the 90th percentile of pair scores
    assert "2" in dict(plain.partners("1")) and "2" not in dict(capped.partners("1"))
    assert dict(capped.partners("3")) == dict(plain.partners("3"))  # the rest is untouched
