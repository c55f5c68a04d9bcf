"""The synthetic catalog used to measure recagent at a million items: seeded, shaped as
described (power-law popularity, genre-loyal users, series a sequence model can learn), and
prepared by the ordinary loader like any catalog a person brings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recagent.data.dataset import Dataset
from recagent.data.synthetic import GENRES, Synthetic, SyntheticConfig


def test_same_seed_same_data_and_the_shape_it_promises() -> None:
    config = SyntheticConfig(items=5000, seed=3)
    a, b = Synthetic(config), Synthetic(config)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert not Synthetic(SyntheticConfig(items=5000, seed=4)).items.equals(a.items)

    items, inter = a.items, a.interactions
    assert len(items) == 5000 and items["item_id"].is_unique
    assert all(set(g.split("|")) <= set(GENRES) for g in items["genres"])
    assert items["year"].between(1920, 2025).all()
    assert inter["user_id"].nunique() == config.n_users == 500
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert (inter.groupby("user_id")["timestamp"].diff().dropna() > 0).all()

    counts = inter["item_id"].value_counts()
    assert counts.iloc[: len(items) // 100].sum() > 0.2 * len(inter)  # 1% of items: >20%
    # users stay with their genres: a user's most common first genre is far above chance
    first = items.set_index("item_id")["genre_idx"]
    top_share = (
        inter.assign(g=inter["item_id"].map(first))
        .groupby("user_id")["g"]
        .agg(lambda g: g.value_counts(normalize=True).iloc[0])
    )
    assert top_share.median() > 0.4


def test_a_written_catalog_prepares_like_any_other(cli, tmp_path: Path) -> None:
    items, inter = Synthetic(SyntheticConfig(items=2000, seed=0)).write(tmp_path / "src")
    home = tmp_path / "home"
    result = cli(
        "--home", str(home), "data", "prepare", "-d", "synth",
        "--items", str(items), "--interactions", str(inter),
        "--year-col", "year", "--genres-col", "genres", "--text-cols", "text",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from recagent.workspace import Workspace

    ds = Dataset.load(Workspace(home), "synth")
    assert ds.n_items == 2000
    item = ds.catalog["1"]
    assert item.year is not None and item.genres and item.text.startswith("A ")
    assert np.isclose(len(ds.interactions), len(pd.read_csv(inter)))
