"""The text an item is embedded as, from an editable template.

A template is Jinja (sandboxed: no attribute access to Python internals, no code execution,
and a render budget per item)
over these variables: ``item_id``, ``title``, ``year`` (or none), ``label`` ("Title (1995)"),
``genres`` (a list), ``genre_text`` ("Action, Comedy"), ``text`` (free text: tags,
description), ``attrs`` (a dict of the item's other columns) and ``knowledge`` (what an LLM
wrote about the item, `recagent knowledge build`; empty where none was built). Whitespace in
the result is collapsed to single spaces. `load_template` accepts a preset name, an inline
template, or ``@path`` to a file, so people can index their own catalogs with their own fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import StrictUndefined, Template, TemplateError

from recagent.data.catalog import Item
from recagent.errors import ConfigError
from recagent.prompts.sandbox import BoundedSandbox, RenderFailure, render_bounded

PRESETS: dict[str, str] = {
    "title": "{{ label }}",
    "title_genres": "{{ label }}.{% if genres %} Genres: {{ genre_text }}.{% endif %}",
    "title_genres_text": (
        "{{ label }}.{% if genres %} Genres: {{ genre_text }}.{% endif %}"
        "{% if text %} {{ text }}{% endif %}"
    ),
    "full": (
        "{{ label }}.{% if genres %} Genres: {{ genre_text }}.{% endif %}"
        "{% if text %} {{ text }}{% endif %}"
        "{% for key, value in attrs.items() %} {{ key }}: {{ value }}.{% endfor %}"
    ),
    # with what an LLM knows about the item (`recagent knowledge build`), where it has any
    "title_genres_knowledge": (
        "{{ label }}.{% if genres %} Genres: {{ genre_text }}.{% endif %}"
        "{% if knowledge %} {{ knowledge }}{% endif %}"
    ),
    "title_genres_text_knowledge": (
        "{{ label }}.{% if genres %} Genres: {{ genre_text }}.{% endif %}"
        "{% if text %} {{ text }}{% endif %}{% if knowledge %} {{ knowledge }}{% endif %}"
    ),
    # NoteLLM's compression prompt (WWW'24), for an LLM behind an embeddings endpoint: the
    # hidden state after the opening quote is the item's embedding
    "notellm": (
        "Extract the item information in json format, compress it into one word for "
        'recommendation. {"title": {{ title | tojson }}, "year": {{ (year or "") | tojson }}, '
        '"genres": {{ genre_text | tojson }}{% if text %}, "content": {{ text | tojson }}'
        '{% endif %}}. The compression word is: "'
    ),
}
_SAMPLE = Item(
    item_id="sample",
    title="Sample Item",
    year=2000,
    genres=("Drama",),
    text="Some words.",
    attrs={"brand": "x"},
)


@dataclass(frozen=True)
class ItemTemplate:
    """A compiled item-text template. `hash` identifies its source in index metadata."""

    name: str
    source: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()[:16]

    def render(self, item: Item) -> str:
        return self.render_all([item])[0]

    def render_all(self, items: Iterable[Item]) -> list[str]:
        """One text per item; an item whose text renders empty is embedded as its title."""
        template = _compile(self.source)
        out = []
        for item in items:
            try:
                text = " ".join(render_bounded(template, variables(item)).split())
            except RenderFailure as exc:
                raise ConfigError(
                    f"item text template {self.name!r} failed for item {item.item_id!r}: {exc}"
                ) from exc
            out.append(text or item.title)
        return out


def variables(item: Item) -> dict[str, object]:
    return {
        "item_id": item.item_id,
        "title": item.title,
        "year": item.year,
        "label": item.label,
        "genres": list(item.genres),
        "genre_text": ", ".join(item.genres),
        "text": item.text,
        "attrs": dict(item.attrs),
        "knowledge": item.knowledge,
    }


_ENV = BoundedSandbox(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=32)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def load_template(spec: str) -> ItemTemplate:
    """A preset name, ``@path`` to a template file, or an inline Jinja template."""
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"empty item text template; use a preset ({', '.join(PRESETS)})")
    if spec in PRESETS:
        template = ItemTemplate(spec, PRESETS[spec])
    elif spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            template = ItemTemplate(path.name, path.read_text(encoding="utf-8-sig").strip())
        except IsADirectoryError:
            raise ConfigError(f"item text template {path}: not a file (a directory)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read item text template {path}: {exc}") from None
    elif "{{" in spec or "{%" in spec:
        template = ItemTemplate("custom", spec)
    else:
        raise ConfigError(
            f"unknown item text template {spec!r}: use a preset ({', '.join(PRESETS)}), "
            "an inline Jinja template such as '{{ label }}. {{ text }}', or @path/to/file"
        )
    try:
        _compile(template.source)
    except TemplateError as exc:
        raise ConfigError(f"item text template {template.name!r} is not valid: {exc}") from exc
    template.render(_SAMPLE)  # unknown variables fail here, not halfway through a build
    return template


__all__ = ["PRESETS", "ItemTemplate", "load_template", "variables"]
