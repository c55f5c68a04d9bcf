"""Prompt templates people edit: one YAML file per prompt, shipped defaults overridable from
`$RECAGENT_HOME/prompts/<name>.yaml`, rendered in a Jinja sandbox with declared variables only.

A template file has `name`, `description`, `version`, `variables` (name -> default and
description), `template` and optionally `system`. Undeclared variables in the text are an
error when the file is loaded; a declared variable without a default must be passed when
rendering. Every render carries the hash of the exact template used.

Rendering runs within a budget (`recagent.prompts.sandbox`): a template that divides by zero,
loops without end or recurses fails with its own name instead of crashing or hanging the
process. A user override that fails (to load or to render) does not stop the turn: the
shipped template is used instead, with a warning naming the override, and `prompts validate`
reports it.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.errors import ConfigError
from recagent.prompts.sandbox import BoundedSandbox, RenderFailure, render_bounded

log = logging.getLogger(__name__)
DEFAULTS_DIR = Path(__file__).parent
_ENV = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=False)


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
        self.fallbacks: dict[str, str] = {}
        """Prompts whose override failed last time, with why: the shipped one was used."""
        self._warned: set[str] = set()

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
        """The template in effect for `name`; `PromptError` if it does not load."""
        return self._load(name, self.path(name))

    def _load(self, name: str, path: Path) -> PromptTemplate:
        try:
            mtime = path.stat().st_mtime
            cached = self._cache.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"{path}: cannot read it ({exc})") from None
        tpl = parse_template(text, str(path))
        if tpl.name != name:
            raise PromptError(f"{path}: name is {tpl.name!r} but the file is {name}.yaml")
        self._cache[path] = (mtime, tpl)
        return tpl

    def validate(self, name: str) -> PromptTemplate:
        """The template in effect, loaded and rendered with its defaults (placeholders for
        required variables); `PromptError` naming the file if either fails."""
        tpl = self.get(name)
        needed = {v: f"<{v}>" for v, spec in tpl.variables.items() if spec.required}
        self._render(tpl, name, str(self.path(name)), needed)
        return tpl

    def render(self, name: str, **values: Any) -> RenderedPrompt:
        """Render the template in effect; if it is a user override that fails, render the
        shipped default instead and log a warning naming the override."""
        path = self.path(name)
        default = self.default_path(name)
        try:
            rendered = self._render(self._load(name, path), name, str(path), values)
        except PromptError as exc:
            if path == default or not default.is_file():
                raise
            self._fall_back(name, exc)
            return self._render(self._load(name, default), name, str(default), values)
        self.fallbacks.pop(name, None)
        return rendered

    def _fall_back(self, name: str, exc: PromptError) -> None:
        reason = str(exc)
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning("%s; using the shipped %r prompt instead", reason, name)
        self.fallbacks[name] = reason

    def _render(
        self, tpl: PromptTemplate, name: str, origin: str, values: dict[str, Any]
    ) -> RenderedPrompt:
        unknown = sorted(set(values) - set(tpl.variables))
        if unknown:
            raise PromptError(f"{origin}: prompt {name!r} has no variable(s) {', '.join(unknown)}")
        context: dict[str, Any] = {}
        for var, spec in tpl.variables.items():
            if var in values:
                context[var] = values[var]
            elif spec.required:
                raise PromptError(f"{origin}: prompt {name!r} needs the variable {var!r}")
            else:
                context[var] = spec.default
        parts: dict[str, str | None] = {"template": tpl.template, "system": tpl.system}
        out: dict[str, str | None] = {}
        for part, source in parts.items():
            try:
                out[part] = None if source is None else render_bounded(_compiled(source), context)
            except RenderFailure as exc:
                raise PromptError(f"{origin}: prompt {name!r} ({part}) failed: {exc}") from None
        text, system = out["template"], out["system"]
        return RenderedPrompt(
            name=name,
            hash=tpl.hash,
            system=None if system is None else system.strip(),
            text=(text or "").strip(),
        )

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
        """The hash of the template each prompt renders with (the shipped one where a broken
        override fell back to it)."""
        out = {}
        for name in names or self.names():
            try:
                if name in self.fallbacks:
                    raise PromptError(self.fallbacks[name])
                out[name] = self.get(name).hash
            except PromptError as exc:
                default = self.default_path(name)
                if self.path(name) == default or not default.is_file():
                    raise
                self._fall_back(name, exc)
                out[name] = self._load(name, default).hash
        return out


__all__ = [
    "PromptError",
    "PromptRegistry",
    "PromptTemplate",
    "RenderedPrompt",
    "Variable",
    "parse_template",
]
