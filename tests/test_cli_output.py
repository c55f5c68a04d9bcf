"""What a newcomer sees from the command line: a quick start (no heavy imports for --help or
--version), tables and help readable at 80 columns (ids and numbers never cut), and
progress as plain lines when output is not a terminal (one per training epoch)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import typer
from rich.console import Console
from typer.testing import CliRunner

from recagent.cli import app
from recagent.commands.tables import fitted_tables
from tests.test_cli_sasrec import TINY

HEAVY = ("torch", "openai", "langchain_core", "chromadb", "scipy", "matplotlib", "fastapi")


def test_the_cli_starts_without_loading_the_heavy_libraries() -> None:
    probe = (
        "import sys; from recagent.cli import app; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    version = subprocess.run(
        [sys.executable, "-m", "recagent", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("recagent ")


def _commands(group: click.Command, path: list[str]):  # type: ignore[no-untyped-def]
    yield path
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from _commands(sub, [*path, name])


def test_every_help_fits_80_columns_without_cutting_anything() -> None:
    runner = CliRunner()
    for path in _commands(typer.main.get_command(app), []):
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}).output
        assert "…" not in out, (path, [line for line in out.splitlines() if "…" in line])
        assert max(len(line) for line in out.splitlines()) <= 80, path


def test_wide_tables_split_instead_of_cutting() -> None:
    headers = ["run", *(f"NDCG@{k}" for k in (5, 10, 20, 50, 100)), "HR@10", "HR@20", "notes"]
    run_id = "20261201-120000-abcd"
    rows = [[run_id, *(f"{0.0123456 + i:.4f}" for i in range(7)), "a long note " * 6]]
    console = Console(width=80, record=True)
    tables = fitted_tables(headers, rows, 80, wrap=["notes"])
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert len(tables) >= 2 and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.count(run_id) == len(tables)  # the key column is in every part
    for i in range(7):
        assert f"{0.0123456 + i:.4f}" in text


def test_training_prints_a_line_per_epoch_when_not_a_terminal(cli, sasrec_source: Path) -> None:
    prepared = cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source))
    assert prepared.exit_code == 0, prepared.output
    result = cli("train", "sasrec", *TINY, "--epochs", "3")
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if "loss=" in line]
    assert len(epochs) == 3, result.stderr
    for n, line in enumerate(epochs, start=1):
        assert f": {n}/3 " in line and "ndcg10=" in line and "best=" in line
        assert re.search(r"\(\d+\.\d s, \d+ s in all\)$", line), line
    assert "done: training SASRec on ml-100k" in result.stderr
