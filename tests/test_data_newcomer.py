"""What a newcomer trips over with their own data: an items file without titles, timestamp
columns with other names, HTML entities in titles, float noise in stats, "ratings" said of
data without ratings, and a diversity of 0 for a catalog without genres."""

from __future__ import annotations

import json
from pathlib import Path

from recagent.agent.session import ChatSession
from recagent.config import AgentConfig
from recagent.data.dataset import Dataset
from recagent.data.source import split_title_year
from recagent.evals.beyond import intra_list_diversity
from recagent.evals.report import markdown
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import Workspace
from tests.conftest import write_ml100k

DESCRIPTIONS = {
    "a": "A lighthouse keeper and his daughter weather a winter storm on a remote island",
    "b": "Two chefs compete",
    "c": "A heist crew plans one last job in a city that never sleeps, and nothing goes right",
}


def _files(tmp_path: Path, ts_header: str = "ts") -> tuple[Path, Path]:
    items = tmp_path / "items.csv"
    items.write_text("item_id,text\n" + "".join(f'{i},"{t}"\n' for i, t in DESCRIPTIONS.items()))
    events = tmp_path / "events.csv"
    events.write_text(
        f"user_id,item_id,{ts_header}\n"
        "u1,c,2024-03-01\nu1,a,2024-01-01\nu1,b,2024-02-01\nu2,a,2024-01-05\nu2,b,2024-01-06\n"
    )
    return items, events


def _prepare(cli, items: Path, events: Path, *extra: str):  # type: ignore[no-untyped-def]
    return cli(
        "data", "prepare", "--dataset", "notes", "--items", str(items),
        "--interactions", str(events), *extra,
    )  # fmt: skip


def test_items_without_titles_show_the_start_of_their_text(cli, tmp_path: Path) -> None:
    items, events = _files(tmp_path)
    result = _prepare(cli, items, events, "--text-cols", "text")
    assert result.exit_code == 0, result.output
    assert "no 'title' column" in result.stderr and "--title-col" in result.stderr
    ds = Dataset.load(Workspace(tmp_path / "home"), "notes")
    assert ds.catalog["b"].title == "Two chefs compete"
    long = ds.catalog["a"].title
    assert long.endswith("…") and len(long) <= 61 and DESCRIPTIONS["a"].startswith(long[:-1])
    assert ds.catalog["a"].text == DESCRIPTIONS["a"]


def test_a_missing_title_column_says_which_and_how_to_map_it(cli, tmp_path: Path) -> None:
    items, events = _files(tmp_path)
    result = _prepare(cli, items, events)
    assert result.exit_code == 2
    assert "no column 'title' (found: item_id, text)" in result.stderr
    assert "--title-col NAME" in result.stderr and "separator" not in result.stderr
    named = _prepare(cli, items, events, "--title-col", "name", "--text-cols", "text")
    assert named.exit_code == 2 and "no column 'name'" in named.stderr
    one_column = tmp_path / "semi.csv"
    one_column.write_text("item_id;title\na;A\n")
    wrong_sep = _prepare(cli, one_column, events)
    assert wrong_sep.exit_code == 2 and "--sep" in wrong_sep.stderr


def test_usual_timestamp_names_are_read_and_said(cli, tmp_path: Path) -> None:
    for header in ("ts", "time", "date"):
        items, events = _files(tmp_path, header)
        result = _prepare(cli, items, events, "--text-cols", "text")
        assert result.exit_code == 0, result.output
        assert f"timestamps read from column '{header}'" in result.stderr
        ds = Dataset.load(Workspace(tmp_path / "home"), "notes")
        assert ds.interactions.has_timestamps
        assert ds.user_history("u1") == ["a", "b", "c"]  # by date, not file order
    items, events = _files(tmp_path, "when_seen")
    result = _prepare(cli, items, events, "--text-cols", "text")
    assert result.exit_code == 0 and "no timestamp column" in result.stderr


def test_html_entities_in_titles_are_decoded(tmp_path: Path, cli) -> None:
    assert split_title_year("Marvel&rsquo;s Spider-Man (2018)") == ("Marvel’s Spider-Man", 2018)
    assert split_title_year("Tom &amp; Jerry") == ("Tom & Jerry", None)
    src = write_ml100k(
        tmp_path / "ent",
        [(1, 1, 5, 1), (1, 2, 4, 2)],
        [(1, "Am&eacute;lie (2001)", [5]), (2, "X (1999)", [1])],
    )
    result = cli("data", "prepare", "--dataset", "ml-100k", "--source", str(src))
    assert result.exit_code == 0, result.output
    assert Dataset.load(Workspace(tmp_path / "home"), "ml-100k").catalog["1"].title == "Amélie"


def test_stats_json_has_no_float_noise(cli, tmp_path: Path) -> None:
    items, events = _files(tmp_path)
    assert _prepare(cli, items, events, "--text-cols", "text").exit_code == 0
    stats = json.loads(cli("data", "stats", "--dataset", "notes", "--json").stdout)
    for value in stats["sequence_length"].values():
        assert value == round(value, 2)


def test_data_without_ratings_is_not_said_to_have_ratings(cli, tmp_path: Path) -> None:
    items, events = _files(tmp_path)
    assert _prepare(cli, items, events, "--text-cols", "text").exit_code == 0
    ds = Dataset.load(Workspace(tmp_path / "home"), "notes")
    session = ChatSession(ds, PromptRegistry(), AgentConfig())
    explanations = " ".join(it.explanation for it in session.ask("", k=3).items)
    assert "interactions in all" in explanations and "ratings" not in explanations


def test_diversity_is_not_available_without_genres() -> None:
    assert intra_list_diversity(["a", "b"], {}) is None
    assert intra_list_diversity(["a", "b"], {"a": frozenset({"x"}), "b": frozenset({"y"})}) == 1.0
    beyond = {"coverage": 0.5, "diversity": None}
    summary = {
        "run_id": "r",
        "users": 1,
        "protocol": "full-rank",
        "notes": [],
        "pipelines": {"popularity": {"accuracy": {}, "failures": 0, "beyond": beyond}},
    }
    config = {"dataset": "d", "fingerprints": {}, "split": "test", "seed": 0}
    report = markdown(summary, {**config, "recagent_version": "x", "prompt_hashes": {}})
    row = next(line for line in report.splitlines() if line.startswith("| popularity | 0.500"))
    assert row.split(" | ")[2] == "n/a"
