"""Preparing datasets: the real MovieLens copies, generic files, filters and ordering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recagent.data.dataset import Dataset
from recagent.data.generic import GenericConfig
from recagent.data.prepare import PrepareConfig, prepare
from recagent.workspace import Workspace
from tests.conftest import write_ml100k


def _stats(cli, *args: str) -> dict:
    result = cli("data", "stats", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ml100k_real_counts(cli, shared_data: Path) -> None:
    result = cli(
        "data", "prepare", "--dataset", "ml-100k", "--source", str(shared_data / "ml-100k")
    )
    assert result.exit_code == 0, result.output
    stats = _stats(cli)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert stats["sequence_length"]["min"] == 20


def test_ml_latest_small_5core_matches_llamarec(cli, shared_data: Path) -> None:
    result = cli(
        "data",
        "prepare",
        "--dataset",
        "ml-latest",
        "--source",
        str(shared_data / "ml-latest-small"),
        "--min-user-interactions",
        "5",
        "--min-item-interactions",
        "5",
    )
    assert result.exit_code == 0, result.output
    # the shared copy carries one rating of an item missing from movies.csv: skipped, said
    assert "not in the items file" in result.stderr
    stats = _stats(cli, "--dataset", "ml-latest")
    assert (stats["users"], stats["items"]) == (610, 3650)


def test_ml_latest_items_carry_tags_and_moved_articles(
    ml100k: Dataset, shared_data: Path, workspace: Workspace
) -> None:
    ds = prepare(
        PrepareConfig(dataset="ml-latest-small", source=shared_data / "ml-latest-small"), workspace
    )
    toy = ds.catalog["1"]
    assert (toy.title, toy.year) == ("Toy Story", 1995)
    assert "Animation" in toy.genres
    assert toy.text.startswith("Tags: ")
    suspects = next(it for it in ml100k.catalog if it.title == "The Usual Suspects")
    assert suspects.year == 1995


def test_generic_csv_with_timestamps(tmp_path: Path, cli) -> None:
    items = tmp_path / "items.csv"
    items.write_text(
        "sku,name,genres,description,brand\n"
        'a1,"Red Shoe, Size 9",shoes|red,Comfortable running shoe,Acme\n'
        "b2,Blue Hat,hats,Warm wool hat,Hatco\n"
        "c3,Green Scarf,scarves|green,Soft scarf,Acme\n"
    )
    events = tmp_path / "events.csv"
    events.write_text(
        "customer,sku,stars,when\n"
        "u1,a1,5,2024-01-01T10:00:00Z\nu1,b2,3,2024-01-02T10:00:00Z\nu1,c3,4,2024-01-03T10:00:00Z\n"
        "u2,c3,4,2024-02-01T00:00:00Z\nu2,a1,2,2024-01-01T00:00:00Z\nu2,b2,5,2024-03-01T00:00:00Z\n"
    )
    result = cli(
        "data",
        "prepare",
        "--dataset",
        "shop",
        "--items",
        str(items),
        "--interactions",
        str(events),
        "--item-id-col",
        "sku",
        "--title-col",
        "name",
        "--user-id-col",
        "customer",
        "--rating-col",
        "stars",
        "--timestamp-col",
        "when",
        "--text-cols",
        "description",
        "--attr-cols",
        "brand",
    )
    assert result.exit_code == 0, result.output
    stats = _stats(cli, "--dataset", "shop")
    assert (stats["users"], stats["items"], stats["interactions"]) == (2, 3, 6)
    assert stats["has_timestamps"] and stats["has_ratings"]
    ds = Dataset.load(Workspace(tmp_path / "home"), "shop")
    assert ds.catalog["a1"].title == "Red Shoe, Size 9"
    assert ds.catalog["a1"].genres == ("shoes", "red")
    assert ds.catalog["a1"].attrs == {"brand": "Acme"}
    assert ds.catalog["b2"].text == "Warm wool hat"
    assert ds.user_history("u2") == ["a1", "c3", "b2"]  # ordered by time, not file


def test_generic_without_timestamps_keeps_file_order(tmp_path: Path, workspace: Workspace) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps({"item_id": i, "title": f"T{i}"}) for i in "xyz") + "\n")
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id\nu,z\nu,x\nv,y\nu,y\n")
    cfg = PrepareConfig(dataset="mine", generic=GenericConfig(items=items, interactions=inter))
    ds = prepare(cfg, workspace)
    assert not ds.interactions.has_timestamps and not ds.interactions.has_ratings
    assert ds.user_history("u") == ["z", "x", "y"]
    assert ds.manifest.stats["interactions"] == 4


def test_repeats_keep_first_unless_asked(tmp_path: Path, workspace: Workspace) -> None:
    src = write_ml100k(tmp_path / "rep", [(1, 1, 5, 10), (1, 2, 5, 11), (1, 1, 3, 12)])
    ds = prepare(PrepareConfig(dataset="ml-100k", source=src), workspace)
    assert ds.user_history("1") == ["1", "2"]
    ds = prepare(PrepareConfig(dataset="ml-100k", source=src, keep_repeats=True), workspace)
    assert ds.user_history("1") == ["1", "2", "1"]


def test_min_rating_and_iterative_k_core(tmp_path: Path, workspace: Workspace) -> None:
    # user 3 rates item 9 only twice; dropping item 9 (1 interaction after min-rating) leaves
    # user 3 below 2 interactions, which must cascade.
    ratings = [
        (1, 1, 5, 1),
        (1, 2, 5, 2),
        (2, 1, 5, 3),
        (2, 2, 4, 4),
        (3, 9, 5, 5),
        (3, 1, 1, 6),
        (4, 9, 2, 7),
    ]
    src = write_ml100k(tmp_path / "kc", ratings)
    cfg = PrepareConfig(
        dataset="ml-100k",
        source=src,
        min_rating=3,
        min_user_interactions=2,
        min_item_interactions=2,
    )
    ds = prepare(cfg, workspace)
    assert [str(u) for u in ds.interactions.user_ids] == ["1", "2"]
    assert ds.catalog.item_ids == ["1", "2"]
    assert ds.manifest.stats["filters"]["dropped_low_rating"] == 2


def test_tie_break_file_order_vs_item_id(tmp_path: Path, workspace: Workspace) -> None:
    src = write_ml100k(tmp_path / "ties", [(1, 5, 5, 7), (1, 3, 5, 7), (1, 4, 5, 7), (1, 1, 5, 1)])
    by_file = prepare(PrepareConfig(dataset="ml-100k", source=src, name="a"), workspace)
    assert by_file.user_history("1") == ["1", "5", "3", "4"]
    by_item = prepare(
        PrepareConfig(dataset="ml-100k", source=src, name="b", tie_break="item"), workspace
    )
    assert by_item.user_history("1") == ["1", "3", "4", "5"]


def test_latin1_titles_are_decoded(tmp_path: Path, workspace: Workspace) -> None:
    src = write_ml100k(
        tmp_path / "latin",
        [(1, 1, 4, 1), (1, 2, 4, 2)],
        items=[(1, "Misérables, Les (1995)", [8]), (2, "Cité des enfants perdus, La (1995)", [9])],
    )
    assert b"\xe9" in (src / "u.item").read_bytes()  # really Latin-1 bytes, not UTF-8
    ds = prepare(PrepareConfig(dataset="ml-100k", source=src), workspace)
    assert ds.catalog["1"].title == "Les Misérables"
    assert ds.catalog["2"].title == "La Cité des enfants perdus"
    assert ds.catalog["1"].genres == ("Drama",)


def test_datasets_live_side_by_side(tiny_ml100k: Path, workspace: Workspace) -> None:
    prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), workspace)
    prepare(
        PrepareConfig(dataset="ml-100k", source=tiny_ml100k, name="ml-100k-5", min_rating=5),
        workspace,
    )
    assert workspace.dataset_names() == ["ml-100k", "ml-100k-5"]
    full, liked = Dataset.load(workspace, "ml-100k"), Dataset.load(workspace, "ml-100k-5")
    assert len(full.interactions) == 14 and len(liked.interactions) == 5
    assert full.fingerprint != liked.fingerprint
    assert liked.manifest.config["min_rating"] == 5


def test_fingerprint_is_deterministic(tiny_ml100k: Path, tmp_path: Path) -> None:
    a = prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), Workspace(tmp_path / "a"))
    b = prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k), Workspace(tmp_path / "b"))
    assert a.fingerprint == b.fingerprint
    assert np.array_equal(a.interactions.item_idx, b.interactions.item_idx)


def test_stats_without_any_dataset_explains(cli) -> None:
    result = cli("data", "stats")
    assert result.exit_code == 2
    assert "recagent data prepare --dataset ml-100k" in result.stderr


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden"])
def test_bad_dataset_names_are_refused(cli, tiny_ml100k: Path, name: str) -> None:
    result = cli("data", "prepare", "--source", str(tiny_ml100k), "--name", name)
    assert result.exit_code == 2
    assert "invalid dataset name" in result.stderr
