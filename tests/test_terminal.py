"""Text from users, catalogs and logs reaches the terminal escaped; JSON stays exact."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from recagent.commands.context import setup_logging
from recagent.terminal import SafeConsole, printable
from tests.conftest import Stack

HOSTILE = "\x1b[31mRED\x1b[0m sci-fi \x1b]0;pwned\x07 \u202eevil\r"


def test_printable_escapes_controls_and_keeps_text() -> None:
    assert printable(HOSTILE) == "\\x1b[31mRED\\x1b[0m sci-fi \\x1b]0;pwned\\x07 \\u202eevil\\x0d"
    assert printable("Amélie (2001)\tline\nnext") == "Amélie (2001)\tline\nnext"
    assert printable("\x9b2J") == "\\x9b2J"  # the one-byte CSI


def _has_raw_controls(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\x07", "\x9b", "\u202e", "\r"))


def test_recommend_and_logs_show_escape_sequences_escaped(
    cli, mini_stack: Stack, tmp_path: Path
) -> None:
    home = tmp_path / "stack"
    shutil.copytree(mini_stack.workspace.root, home)
    shown = cli("--home", str(home), "recommend", "--llm", "offline", "--user", "3", HOSTILE)
    assert shown.exit_code == 0, shown.output
    assert not _has_raw_controls(shown.output)

    logs = cli("--home", str(home), "logs", "--last", "5")
    assert logs.exit_code == 0, logs.output
    assert not _has_raw_controls(logs.output)
    assert "\\x1b" in logs.stdout  # shown, escaped (the narrow table wraps the rest)

    exact = cli("--home", str(home), "logs", "--last", "1", "--json")
    assert json.loads(exact.stdout)[0]["message"] == HOSTILE.strip()  # JSON: the exact text


def test_errors_and_log_lines_are_escaped(cli, tmp_path: Path) -> None:
    bad = tmp_path / "\x1b]0;title\x07.csv"
    result = cli("data", "prepare", "-d", "x", "--items", str(bad), "--interactions", str(bad))
    assert result.exit_code == 2
    assert not _has_raw_controls(result.output) and "\\x1b]0;title\\x07.csv" in result.stderr


def test_log_records_quoting_user_input_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    console = SafeConsole(stderr=True)
    setup_logging(0, console)
    logging.getLogger("recagent.test").warning("user said %s", HOSTILE)
    err = capsys.readouterr().err
    assert "user said" in err and not _has_raw_controls(err)
