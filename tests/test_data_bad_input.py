"""Bad input: exit code 2, one message naming file and line, and the previous good copy stays."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from recagent.data.dataset import Dataset
from recagent.workspace import Workspace

GOOD = "1\t1\t5\t100\n1\t2\t4\t101\n2\t1\t3\t102\n"


def _break(folder: Path, name: str, text: str | bytes) -> None:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "missing file": (lambda d: (d / "u.data").unlink(), "u.data", "missing"),
    "wrong separator": (
        lambda d: _break(d, "u.data", GOOD.replace("\t", ",")),
        "u.data, line 1",
        "expected 4 tab-separated fields, found 1",
    ),
    "non-numeric rating": (
        lambda d: _break(d, "u.data", GOOD + "3\t1\tfive\t103\n"),
        "u.data, line 4",
        "should be a number",
    ),
    "non-numeric timestamp": (
        lambda d: _break(d, "u.data", GOOD + "3\t1\t4\t10x\n"),
        "u.data, line 4",
        "should be an integer",
    ),
    "non-numeric item id": (
        lambda d: _break(d, "u.data", GOOD + "3\tabc\t4\t103\n"),
        "u.data, line 4",
        "column 'item_id' should be a numeric id, got 'abc'",
    ),
    "empty user id": (
        lambda d: _break(d, "u.data", GOOD + "\t1\t4\t103\n"),
        "u.data, line 4",
        "empty id in column 'user_id'",
    ),
    "truncated line": (
        lambda d: _break(d, "u.data", GOOD + "3\t1"),
        "u.data, line 4",
        "found 2 (truncated line?)",
    ),
    "empty file": (lambda d: _break(d, "u.data", ""), "u.data, line 1", "file is empty"),
    "duplicate item id, different title": (
        lambda d: _break(
            d, "u.item", (d / "u.item").read_text() + "2|Other Title (1990)|||x" + "|0" * 19 + "\n"
        ),
        "u.item, line 7",
        "appears twice with different titles",
    ),
    "truncated item line": (
        lambda d: _break(d, "u.item", (d / "u.item").read_bytes()[:-20]),
        "u.item, line 6",
        "truncated line?",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_names_file_and_line_and_keeps_good_copy(
    case: str, cli, tiny_ml100k: Path, tmp_path: Path
) -> None:
    ok = cli("data", "prepare", "--source", str(tiny_ml100k))
    assert ok.exit_code == 0, ok.output
    ws = Workspace(tmp_path / "home")
    before = Dataset.load(ws, "ml-100k")

    bad = tmp_path / "bad"
    shutil.copytree(tiny_ml100k, bad)
    (bad / "u.data").write_text(GOOD)
    breaker, where, what = CASES[case]
    breaker(bad)
    result = cli("data", "prepare", "--source", str(bad))

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert where in message and what in message, message
    after = Dataset.load(ws, "ml-100k")
    assert after.fingerprint == before.fingerprint
    assert len(after.interactions) == len(before.interactions)
    leftovers = [p.name for p in (ws.datasets_dir / "ml-100k").iterdir()]
    assert not any(name.startswith(".staging") for name in leftovers)


def test_unknown_item_is_skipped_with_warning_or_refused_with_strict(
    cli, tiny_ml100k: Path
) -> None:
    (tiny_ml100k / "u.data").write_text(GOOD + "9\t77\t5\t999\n")
    lenient = cli("data", "prepare", "--source", str(tiny_ml100k))
    assert lenient.exit_code == 0
    assert "u.data, line 4" in " ".join(lenient.stderr.split())
    strict = cli("data", "prepare", "--source", str(tiny_ml100k), "--strict")
    assert strict.exit_code == 2
    assert "item id '77' is not in the items file" in " ".join(strict.stderr.split())


def test_generic_missing_column_names_header_line(cli, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("id;title\n1;A\n")
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id\nu,1\n")
    result = cli("data", "prepare", "-d", "x", "--items", str(items), "--interactions", str(inter))
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "items.csv, line 1: no column 'item_id'" in message
    assert "separator" in message


def test_generic_bad_jsonl_line(cli, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "a", "title": "A"}\n{"item_id": "b", "title": \n')
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id\nu,a\n")
    result = cli("data", "prepare", "-d", "x", "--items", str(items), "--interactions", str(inter))
    assert result.exit_code == 2
    assert "items.jsonl, line 2" in " ".join(result.stderr.split())


def test_source_that_is_not_a_folder(cli, tmp_path: Path) -> None:
    result = cli("data", "prepare", "--source", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "--source must be a folder" in " ".join(result.stderr.split())


def test_unknown_dataset_explains_generic_route(cli) -> None:
    result = cli("data", "prepare", "--dataset", "netflix", "--source", ".")
    assert result.exit_code == 2
    assert "--items FILE and --interactions FILE" in " ".join(result.stderr.split())


def test_generic_year_column_reads_the_file_once_and_names_a_bad_years_line(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding a row's line re-reads the file, so it happens only for an error (it once ran
    for every item with a year: a million items never finished preparing)."""
    import recagent.data.generic as generic

    looked_up: list[int] = []
    real = generic.line_of_row

    def counting(spec, row):  # type: ignore[no-untyped-def]
        looked_up.append(row)
        return real(spec, row)

    monkeypatch.setattr(generic, "line_of_row", counting)
    items = tmp_path / "items.csv"
    rows = "".join(f"{i},Film {i},{1950 + i}\n" for i in range(1, 41))
    items.write_text("item_id,title,year\n" + rows)
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id\n" + "".join(f"u{i % 3},{i}\n" for i in range(1, 41)))
    args = ("data", "prepare", "-d", "x", "--items", str(items), "--interactions", str(inter))
    assert cli(*args, "--year-col", "year").exit_code == 0
    assert looked_up == []
    items.write_text("item_id,title,year\n" + rows.replace("1,Film 1,1951", "1,Film 1,soon"))
    result = cli(*args[:3], "y", *args[4:], "--year-col", "year")
    assert result.exit_code == 2
    assert "items.csv, line 2: column 'year' should be a year, got 'soon'" in " ".join(
        result.stderr.split()
    )
