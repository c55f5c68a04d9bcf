"""Fuzzing every loader format: 200 seeded malformed inputs each (random bytes, truncated
lines, wrong separators, huge fields, mixed encodings). Each one ends in exit code 2 and one
message naming the file, never a traceback, and the good dataset prepared before stays."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recagent.data.dataset import Dataset
from recagent.workspace import Workspace
from tests.formats import FORMATS, KINDS, malformed

CASES = 200


@pytest.mark.parametrize("name", list(FORMATS))
def test_malformed_inputs_end_in_one_message_and_keep_the_good_dataset(
    name: str, cli, tmp_path: Path
) -> None:
    fmt = FORMATS[name]
    good = tmp_path / "good"
    good.mkdir()
    fmt.write(good)
    target = ["--name", "fuzzed"]
    prepared = cli("data", "prepare", *fmt.args(good), *target)
    assert prepared.exit_code == 0, prepared.output
    ws = Workspace(tmp_path / "home")
    before = Dataset.load(ws, "fuzzed").fingerprint

    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    seen: dict[str, int] = dict.fromkeys(KINDS, 0)
    for file, kind, content in malformed(fmt, good, seed=list(FORMATS).index(name), count=CASES):
        (bad / file).write_bytes(content)
        result = cli("data", "prepare", *fmt.args(bad), *target)
        (bad / file).write_bytes((good / file).read_bytes())
        where = f"{name}: {kind} in {file}"
        assert result.exit_code == 2, f"{where}: {result.output[-2000:]}"
        assert "Traceback" not in result.output, where
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and file in errors[0], f"{where}: {result.stderr[-2000:]}"
        seen[kind] += 1
    assert all(seen.values()), seen
    assert Dataset.load(ws, "fuzzed").fingerprint == before
    leftovers = [p.name for p in (ws.datasets_dir / "fuzzed").iterdir()]
    assert not any(p.startswith(".staging") for p in leftovers), leftovers
