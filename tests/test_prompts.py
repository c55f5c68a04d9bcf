"""Prompt templates: overrides, declared variables, sandboxed rendering, and the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recagent.prompts.registry import PromptError, PromptRegistry

GOOD = """name: system
description: test override
version: 9
variables:
  domain: {default: films}
  k: {default: 3}
  user: {default: someone}
  explanation_style: {default: short}
template: "Recommend {{ k }} {{ domain }} to {{ user }}. {{ explanation_style }}"
"""


def test_shipped_prompts_all_validate() -> None:
    reg = PromptRegistry()
    assert {"system", "explanation", "explanation_style", "profile_summary"} <= set(reg.names())
    for name in reg.names():
        tpl = reg.get(name)
        needed = {v: "x" for v, s in tpl.variables.items() if s.required}
        assert reg.render(name, **needed).text


def test_override_wins_and_changes_hash(tmp_path: Path) -> None:
    reg = PromptRegistry(tmp_path)
    before = reg.get("system").hash
    (tmp_path / "system.yaml").write_text(GOOD)
    assert reg.source("system") == "user"
    assert reg.render("system").text.startswith("Recommend 3 films")
    assert reg.get("system").hash != before
    assert "+version: 9" in reg.diff("system")


def test_undeclared_variable_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "system.yaml").write_text(GOOD.replace("{{ user }}", "{{ usr }}"))
    with pytest.raises(PromptError, match=r"undeclared variable.*usr"):
        PromptRegistry(tmp_path).get("system")


def test_missing_required_and_unknown_variables(tmp_path: Path) -> None:
    reg = PromptRegistry(tmp_path)
    with pytest.raises(PromptError, match="needs the variable 'title'"):
        reg.render("explanation")
    with pytest.raises(PromptError, match="no variable"):
        reg.render("explanation", title="x", bogus=1)


def test_rendering_is_sandboxed(tmp_path: Path) -> None:
    evil = GOOD.replace('"Recommend', '"{{ k.__class__.__mro__[1].__subclasses__() }} Recommend')
    (tmp_path / "system.yaml").write_text(evil)
    reg = PromptRegistry(tmp_path)
    with pytest.raises(PromptError, match="unsafe"):
        reg.validate("system")
    assert reg.render("system").text == PromptRegistry().render("system").text  # the shipped one


def test_cli_list_show_path_validate(cli, tmp_path: Path) -> None:
    listed = cli("prompts", "list", "--json")
    assert listed.exit_code == 0 and '"system"' in listed.stdout
    assert cli("prompts", "show", "system").exit_code == 0
    assert cli("prompts", "path", "system").stdout.strip().endswith("system.yaml")
    assert cli("prompts", "validate").exit_code == 0
    assert cli("prompts", "show", "nope").exit_code == 2


def _editor_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(f"import sys, pathlib\np = pathlib.Path(sys.argv[1])\n{body}\n")
    return f"{sys.executable} {script}"


def test_cli_edit_saves_valid_copy_and_reset(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "EDITOR",
        _editor_script(
            tmp_path,
            "import re; p.write_text(re.sub(r'version: \\d+', 'version: 77', p.read_text()))",
        ),
    )
    result = cli("prompts", "edit", "explanation_style")
    assert result.exit_code == 0, result.output
    override = tmp_path / "home" / "prompts" / "explanation_style.yaml"
    assert "version: 77" in override.read_text()
    assert "version: 77" in cli("prompts", "diff", "explanation_style").stdout
    assert cli("prompts", "reset", "explanation_style", "--yes").exit_code == 0
    assert not override.exists()


def test_cli_edit_refuses_invalid_template(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "EDITOR", _editor_script(tmp_path, "p.write_text(p.read_text() + '\\n  {{ nope }}\\n')")
    )
    result = cli("prompts", "edit", "explanation_style", input="n\n")
    assert result.exit_code == 2
    assert "nope" in result.output
    assert not (tmp_path / "home" / "prompts" / "explanation_style.yaml").exists()
