"""Prompt templates people edit: one YAML file per prompt, shipped defaults overridable from
`$RECAGENT_HOME/prompts/<name>.yaml`, rendered in a Jinja sandbox with declared variables only.

A template file has `name`, `description`, `version`, `variables` (name -> default and
description), `template` and optionally `system`. Undeclared variables in the text are an
error when the file is loaded; a declared variable without a default must be passed when
rendering. Every render carries the hash of the exact template used.
"""

from __future__ import annotations

import difflib
import hashlib
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.errors import ConfigError

DEFAULTS_DIR = Path(__file__).parent
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


class PromptError(ConfigError):
    """A template that does not parse, declares the wrong variables, or cannot render."""


class Variable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    default: Any = None
    required: bool = False


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    version: int | str = 1
    variables: dict[str, Variable] = Field(default_factory=dict)
    system: str | None = None
    template: str

    @cached_property
    def hash(self) -> str:
        canonical = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class RenderedPrompt(BaseModel):
    name: str
    hash: str
    system: str | None
    text: str


@lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def _undeclared(source: str) -> set[str]:
    return meta.find_undeclared_variables(_ENV.parse(source))


def parse_template(text: str, origin: str) -> PromptTemplate:
    """Parse and check a template file's content; `origin` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromptError(f"{origin}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PromptError(f"{origin}: expected a mapping with name, description, template")
    try:
        tpl = PromptTemplate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PromptError(f"{origin}: {problems}") from None
    for part in ("system", "template"):
        source = getattr(tpl, part)
        if source is None:
            continue
        try:
            used = _undeclared(source)
        except TemplateSyntaxError as exc:
            raise PromptError(f"{origin}: {part}, line {exc.lineno}: {exc.message}") from None
        unknown = sorted(used - set(tpl.variables))
        if unknown:
            raise PromptError(
                f"{origin}: {part} uses undeclared variable(s) {', '.join(unknown)}; declare "
                f"them under `variables:` (declared: {', '.join(tpl.variables) or 'none'})"
            )
    return tpl


class PromptRegistry:
    """Shipped templates plus the user's overrides."""

    def __init__(self, user_dir: Path | None = None, defaults_dir: Path = DEFAULTS_DIR) -> None:
        self.user_dir = user_dir
        self.defaults_dir = defaults_dir
        self._cache: dict[Path, tuple[float, PromptTemplate]] = {}

    def names(self) -> list[str]:
        found = {p.stem for p in self.defaults_dir.glob("*.yaml")}
        if self.user_dir and self.user_dir.is_dir():
            found |= {p.stem for p in self.user_dir.glob("*.yaml")}
        return sorted(found)

    def default_path(self, name: str) -> Path:
        return self.defaults_dir / f"{name}.yaml"

    def user_path(self, name: str) -> Path | None:
        return self.user_dir / f"{name}.yaml" if self.user_dir else None

    def path(self, name: str) -> Path:
        """The file in effect for `name` (the override if there is one)."""
        user = self.user_path(name)
        if user is not None and user.is_file():
            return user
        default = self.default_path(name)
        if default.is_file():
            return default
        raise PromptError(f"no prompt named {name!r} (prompts: {', '.join(self.names())})")

    def source(self, name: str) -> Literal["user", "default"]:
        return "default" if self.path(name) == self.default_path(name) else "user"

    def get(self, name: str) -> PromptTemplate:
        path = self.path(name)
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        tpl = parse_template(path.read_text(encoding="utf-8"), str(path))
        if tpl.name != name:
            raise PromptError(f"{path}: name is {tpl.name!r} but the file is {name}.yaml")
        self._cache[path] = (mtime, tpl)
        return tpl

    def render(self, name: str, **values: Any) -> RenderedPrompt:
        tpl = self.get(name)
        unknown = sorted(set(values) - set(tpl.variables))
        if unknown:
            raise PromptError(f"prompt {name!r} has no variable(s) {', '.join(unknown)}")
        context: dict[str, Any] = {}
        for var, spec in tpl.variables.items():
            if var in values:
                context[var] = values[var]
            elif spec.required:
                raise PromptError(f"prompt {name!r} needs the variable {var!r}")
            else:
                context[var] = spec.default
        try:
            text = _compiled(tpl.template).render(context).strip()
            system = _compiled(tpl.system).render(context).strip() if tpl.system else None
        except (UndefinedError, SecurityError, TypeError) as exc:
            raise PromptError(f"prompt {name!r} failed to render: {exc}") from None
        return RenderedPrompt(name=name, hash=tpl.hash, system=system, text=text)

    def diff(self, name: str) -> str:
        """Unified diff from the shipped default to the override ('' when not overridden)."""
        user = self.user_path(name)
        if user is None or not user.is_file():
            return ""
        default = self.default_path(name)
        old = (
            default.read_text(encoding="utf-8").splitlines(keepends=True)
            if default.is_file()
            else []
        )
        new = user.read_text(encoding="utf-8").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, str(default), str(user)))

    def hashes(self, names: list[str] | None = None) -> dict[str, str]:
        return {n: self.get(n).hash for n in (names or self.names())}


__all__ = [
    "PromptError",
    "PromptRegistry",
    "PromptTemplate",
    "RenderedPrompt",
    "Variable",
    "parse_template",
]
