"""Settings precedence: CLI > environment > recagent.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.config import load_settings
from recagent.errors import ConfigError


def test_env_beats_toml_and_cli_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "recagent.toml").write_text('dataset = "from-toml"\n')
    assert load_settings().dataset == "from-toml"
    monkeypatch.setenv("RECAGENT_DATASET", "from-env")
    assert load_settings().dataset == "from-env"
    assert load_settings(dataset="from-cli").dataset == "from-cli"


def test_home_from_env(tmp_path: Path) -> None:
    assert load_settings().home == tmp_path / "home"


def test_toml_in_home_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "elsewhere"
    home.mkdir()
    (home / "recagent.toml").write_text('dataset = "ml-1m"\n')
    monkeypatch.chdir(home.parent.parent)
    assert load_settings(home=home).dataset == "ml-1m"


def test_unknown_key_and_bad_toml_are_clear(tmp_path: Path) -> None:
    (tmp_path / "recagent.toml").write_text("datset = 'typo'\n")
    with pytest.raises(ConfigError, match="datset"):
        load_settings()
    (tmp_path / "recagent.toml").write_text("dataset = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_unrelated_recagent_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAGENT_TEST_DATA", "/somewhere")
    assert load_settings().dataset == "ml-100k"


def test_cli_reports_bad_config_with_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "recagent.toml").write_text("bogus = 1\n")
    result = cli("data", "list")
    assert result.exit_code == 2
    assert "bogus" in result.stderr and "Traceback" not in result.output
