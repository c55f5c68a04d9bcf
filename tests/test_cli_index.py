"""`recagent index build|query|status`, including every bad input (one line, exit code 2)."""

from __future__ import annotations

import json
import shutil

import pytest

from recagent.data.dataset import Dataset
from recagent.workspace import Workspace
from tests.conftest import free_port


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr  # (a progress line may precede it)
    assert "Traceback" not in result.output and result.stderr.rstrip().endswith(errors[0])
    return errors[0]


@pytest.fixture
def built(cli, recall_dataset: Dataset):  # type: ignore[no-untyped-def]
    result = cli("index", "build")
    assert result.exit_code == 0, result.output
    assert "indexed 12 items of ml-100k with wordllama:l2_supercat" in result.stdout
    return recall_dataset


def test_build_status_and_query(cli, built: Dataset) -> None:  # type: ignore[no-untyped-def]
    assert "up to date" in cli("index", "build").stdout
    status = json.loads(cli("index", "status", "--json").stdout)
    assert status["state"] == "fresh" and status["meta"]["items"] == 12
    assert "fresh" in cli("index", "status").stdout

    rows = json.loads(
        cli("index", "query", "cowboys in the wild west", "--k", "2", "--json").stdout
    )
    assert [r["rank"] for r in rows] == [1, 2]
    assert {"item_id", "title", "year", "genres", "score", "text", "because_of"} <= rows[0].keys()

    rows = json.loads(cli("index", "query", "movie", "-g", "horror", "--json").stdout)
    assert rows and all("Horror" in r["genres"] for r in rows)
    rows = json.loads(
        cli(
            "index", "query", "movie", "--exclude-genre", "sci fi", "--year-min", "1980", "--json"
        ).stdout
    )
    assert all("Sci-Fi" not in r["genres"] and r["year"] >= 1980 for r in rows)

    rows = json.loads(cli("index", "query", "--like", "1", "--k", "3", "--json").stdout)
    assert len(rows) == 3 and all(r["because_of"] == ["1"] and r["item_id"] != "1" for r in rows)
    rows = json.loads(cli("index", "query", "--user", "1", "--json").stdout)
    assert rows and not {r["item_id"] for r in rows} & {"1", "11", "9", "2", "3"}

    table = cli("index", "query", "space", "--k", "3")
    assert table.exit_code == 0 and "Space" in table.stdout


def test_query_builds_a_missing_index(cli, recall_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("index", "status", "--json").stdout)["state"] == "missing"
    result = cli("index", "query", "romance in paris", "--k", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["title"] in {"Love in Paris", "Paris Romance Story"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "   "], "query is empty"),
        (["query", ""], "query is empty"),
        (["query", "space", "--k", "0"], "k must be between 1 and 1000"),
        (["query", "space", "--k", "100000"], "k must be between 1 and 1000"),
        (["query", "space", "--genre", "cooking"], "unknown genre 'cooking'; valid genres: Action"),
        (["query", "--like", "999"], "unknown item id(s) in item_ids: '999'"),
        (["query", "--user", "999"], "unknown user '999'"),
        (["query"], "give exactly one of"),
        (["query", "x", "--like", "1"], "give exactly one of"),
        (["query", "x", "--year-min", "2000", "--year-max", "1990"], "after year_max"),
        (["build", "--template", "{{ nope }}"], "nope"),
        (["build", "--batch-size", "0"], "batch_size"),
        (["build", "--embedder", "sentence-transformers"], "st_model_path"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, built: Dataset, args, message) -> None:  # type: ignore[no-untyped-def]
    assert message in one_error_line(cli("index", *args))


def test_unreachable_server(cli, recall_dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["build"], ["query", "x"], ["status"]):
        line = one_error_line(cli("index", *args, "--chroma-url", url))
        assert f"cannot reach the Chroma server at {url}" in line


def test_index_of_another_dataset(cli, built: Dataset, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    folder = workspace.datasets_dir
    shutil.copytree(folder / "ml-100k", folder / "copy")
    shutil.copytree(workspace.index("ml-100k").base, workspace.index("copy").base)
    args = ["--dataset", "copy", "--collection", "recagent-ml-100k"]
    assert "another dataset" in one_error_line(cli("index", "query", "x", *args))
    assert "another dataset" in one_error_line(cli("index", "build", *args))
    assert cli("index", "build", *args, "--rebuild").exit_code == 0


def test_wrong_dimension_embedder(cli, recall_dataset: Dataset, openai_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RECAGENT_INDEX__OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("RECAGENT_INDEX__OPENAI_DIMENSIONS", "16")
    assert cli("index", "build", "--embedder", "openai").exit_code == 0
    assert json.loads(cli("index", "query", "x", "--embedder", "openai", "--json").stdout)
    # the endpoint now answers with 8-d vectors: the build stops, the index stays as it was
    openai_server.returned_dim = 8
    line = one_error_line(cli("index", "build", "--embedder", "openai", "--rebuild"))
    assert "8-d vectors, expected 16-d" in line
    line = one_error_line(cli("index", "query", "x", "--embedder", "openai"))
    assert "8-d vectors, expected 16-d" in line
    openai_server.returned_dim = None
    assert (
        json.loads(cli("index", "status", "--embedder", "openai", "--json").stdout)["state"]
        == "fresh"
    )
    # querying the openai-built index with another embedder is refused, not answered
    line = one_error_line(cli("index", "query", "x"))
    assert "embedder: openai:text-embedding-3-small -> wordllama:l2_supercat" in line


def test_server_path_from_the_cli(cli, recall_dataset: Dataset, chroma_server: str) -> None:  # type: ignore[no-untyped-def]
    args = ["--chroma-url", chroma_server, "--collection", "test-cli-server"]
    assert cli("index", "build", *args).exit_code == 0
    rows = json.loads(cli("index", "query", "horror", "--k", "2", "--json", *args).stdout)
    assert {r["title"] for r in rows} == {"Haunted House of Horror", "Zombie Night Horror"}
    assert json.loads(cli("index", "status", "--json", *args).stdout)["state"] == "fresh"
