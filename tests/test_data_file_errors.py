"""Every way a path can fail to be a readable text file, in every loader format: exit code 2,
one message naming the file (and line where there is one), no traceback. A UTF-8
byte-order mark is accepted in every text format."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from recagent.data.dataset import Dataset
from recagent.workspace import Workspace
from tests.formats import FORMATS

OPTIONAL = {"u.user", "users.dat", "tags.csv", "links.csv"}  # a release may lack these


def _missing(path: Path) -> None:
    path.unlink()


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _latin1(path: Path) -> None:
    """The last line ends in a Latin-1 'é' (one byte, invalid in UTF-8)."""
    lines = path.read_bytes().split(b"\n")
    lines[-2] += "é".encode("latin-1")
    path.write_bytes(b"\n".join(lines))


def _binary(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04\x00\x00junk\x00" * 50)


BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (_missing, "missing"),
    "directory": (_directory, "not a file (a directory)"),
    "latin-1": (_latin1, "not valid utf-8 text"),
    "binary": (_binary, "binary data, not text"),
}

CASES = [
    (fmt, spec.name, brk)
    for fmt, f in FORMATS.items()
    for spec in f.files
    for brk in BREAKS
    if not (brk == "latin-1" and spec.encoding != "utf-8")  # any byte is Latin-1 text
    if not (brk == "missing" and spec.name in OPTIONAL)
]


def _error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize(("fmt", "file", "brk"), CASES)
def test_file_errors_are_one_line_naming_the_file(
    fmt: str, file: str, brk: str, cli, tmp_path: Path
) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    FORMATS[fmt].write(folder)
    breaker, what = BREAKS[brk]
    breaker(folder / file)
    result = cli("data", "prepare", *FORMATS[fmt].args(folder), "--name", "x")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = _error_line(result.stderr)
    what = "file not found" if brk == "missing" and fmt in ("csv", "tsv", "jsonl") else what
    assert str(folder / file) in line and what in line, line
    if brk in ("latin-1", "binary"):
        assert ", line " in line


def test_the_issue_jsonl_cases(cli, tmp_path: Path) -> None:
    """`--interactions nope.jsonl`, a directory named x.jsonl, Latin-1 and binary .jsonl."""
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\na,A\nb,B\n")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"user_id": "Zoë", "item_id": "a"}\n'.encode("latin-1"))
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(bytes(range(256)) * 4)
    (tmp_path / "x.jsonl").mkdir()
    expected = {
        "nope.jsonl": "nope.jsonl: file not found",
        "x.jsonl": "x.jsonl: not a file (a directory)",
        "latin.jsonl": "latin.jsonl, line 1: not valid utf-8 text",
        "junk.jsonl": "junk.jsonl, line 1: binary data, not text",
    }
    for name, message in expected.items():
        args = ["--items", str(items), "--interactions", str(tmp_path / name)]
        result = cli("data", "prepare", "--dataset", "shop", *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert message in _error_line(result.stderr)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_utf8_bom_is_accepted_in_every_format(fmt: str, cli, tmp_path: Path) -> None:
    plain, bom = tmp_path / "plain", tmp_path / "bom"
    plain.mkdir()
    FORMATS[fmt].write(plain)
    shutil.copytree(plain, bom)
    for spec in FORMATS[fmt].files:
        path = bom / spec.name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for name, folder in (("plain", plain), ("bom", bom)):
        result = cli("data", "prepare", *FORMATS[fmt].args(folder), "--name", name)
        assert result.exit_code == 0, result.output
    ws = Workspace(tmp_path / "home")
    assert Dataset.load(ws, "bom").fingerprint == Dataset.load(ws, "plain").fingerprint


def test_utf16_says_what_it_is(cli, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    FORMATS["csv"].write(folder)
    path = folder / "items.csv"
    path.write_bytes(path.read_text().encode("utf-16"))
    result = cli("data", "prepare", *FORMATS["csv"].args(folder), "--name", "x")
    assert result.exit_code == 2
    assert "UTF-16 text (byte-order mark); save it as UTF-8" in _error_line(result.stderr)
