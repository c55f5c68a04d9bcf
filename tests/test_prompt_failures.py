"""Templates that fail while rendering: reported with their name, bounded in time, and a
broken override never stops a turn (the shipped template answers, with a warning)."""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from recagent.errors import ConfigError
from recagent.index.text import load_template
from recagent.prompts.registry import PromptError, PromptRegistry
from tests.conftest import Stack

BROKEN = {
    "division by zero": ("{{ 1/0 }}", "ZeroDivisionError"),
    "huge range": ("{{ range(10**9)|length }}", "Range too big"),
    "recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recurses"),
    "endless loop": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "render budget",
    ),
    "huge string": ("{{ 'x' * 10**9 }}", "more than 1,000,000"),
    "huge padding": ("{{ title|center(10**9) }}", "center"),
}


def _override(folder: Path, template: str) -> Path:
    """An explanation.yaml override: the shipped file with its template replaced."""
    shipped = yaml.safe_load(PromptRegistry().default_path("explanation").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "explanation.yaml"
    path.write_text(yaml.safe_dump({**shipped, "template": template}), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(BROKEN))
def test_render_errors_name_the_template_and_end_in_time(case: str, tmp_path: Path) -> None:
    template, reason = BROKEN[case]
    path = _override(tmp_path / "prompts", template)
    reg = PromptRegistry(tmp_path / "prompts")
    start = time.monotonic()
    with pytest.raises(PromptError) as err:
        reg.validate("explanation")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert str(path) in message and "'explanation'" in message and reason in message
    assert "\n" not in message


@pytest.mark.parametrize("case", list(BROKEN))
def test_prompts_validate_exits_2_naming_the_override(case: str, cli, tmp_path: Path) -> None:
    path = _override(tmp_path / "home" / "prompts", BROKEN[case][0])
    result = cli("prompts", "validate")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(path) in " ".join(result.stderr.split())
    assert "ok      system" in result.stdout  # the others are still checked


def test_a_broken_override_falls_back_to_the_shipped_template(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _override(tmp_path / "prompts", "{{ 1/0 }}")
    reg = PromptRegistry(tmp_path / "prompts")
    shipped = PromptRegistry()
    with caplog.at_level(logging.WARNING):
        got = reg.render("explanation", title="Heat", liked_genres=["Crime"])
        reg.render("explanation", title="Alien")
    want = shipped.render("explanation", title="Heat", liked_genres=["Crime"])
    assert got.text == want.text and got.hash == want.hash
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once, not once per item
    assert str(path) in warnings[0] and "shipped" in warnings[0]
    assert reg.hashes(["explanation"]) == {"explanation": want.hash}


def test_an_override_that_does_not_load_falls_back_too(tmp_path: Path) -> None:
    (tmp_path / "explanation.yaml").write_bytes(b"\xff\xfe not yaml: [")
    reg = PromptRegistry(tmp_path)
    assert reg.render("explanation", title="Heat").text
    assert "explanation.yaml" in reg.fallbacks["explanation"]
    with pytest.raises(PromptError, match=r"explanation\.yaml"):
        reg.validate("explanation")


def test_a_shipped_template_is_never_silently_replaced(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="needs the variable 'title'"):
        PromptRegistry(tmp_path).render("explanation")


def test_a_turn_with_a_broken_override_still_answers(
    cli, mini_stack: Stack, tmp_path: Path
) -> None:
    home = tmp_path / "stack"
    shutil.copytree(mini_stack.workspace.root, home)
    _override(home / "prompts", "{{ 1/0 }}")
    result = cli("--home", str(home), "recommend", "--user", "3", "a sci-fi film", "--k", "3")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(r"┃\s+#", result.stdout)  # the table of answers
    warning = " ".join(result.stderr.split())  # the log handler wraps long paths
    assert "WARNING" in warning and "explanation.yaml" in warning
    assert "ZeroDivisionError" in warning and "shipped 'explanation' prompt" in warning


def test_item_text_template_errors_name_the_template() -> None:
    with pytest.raises(ConfigError, match=r"'custom' failed .*ZeroDivisionError"):
        load_template("{{ label }} {{ 1/0 }}")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="render budget"):
        load_template(
            "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
        )
    assert time.monotonic() - start < 5


def test_the_render_budget_counts_the_templates_cpu_not_waiting() -> None:
    """A render waiting (for a busy CPU, here for a sleep) is not cut short; one computing
    past the budget is."""
    from recagent.prompts.sandbox import BoundedSandbox, RenderFailure, render_bounded

    env = BoundedSandbox()
    waiting = env.from_string("{{ wait() }}{{ wait() }} done")
    assert render_bounded(waiting, {"wait": lambda: time.sleep(0.3) or ""}, 0.2) == " done"
    spinning = env.from_string(
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(RenderFailure, match="render budget"):
        render_bounded(spinning, {}, 0.2)
