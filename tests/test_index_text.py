"""Item text templates: presets, custom and file templates, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.data.catalog import Item
from recagent.errors import ConfigError
from recagent.index.text import PRESETS, load_template

ITEM = Item(
    item_id="1",
    title="Toy Story",
    year=1995,
    genres=("Animation", "Comedy"),
    text="Tags: pixar,   fun.",
    attrs={"brand": "Pixar"},
)
BARE = Item(item_id="2", title="Untitled")


def test_presets_render_what_they_name() -> None:
    assert load_template("title").render(ITEM) == "Toy Story (1995)"
    assert load_template("title_genres").render(ITEM) == (
        "Toy Story (1995). Genres: Animation, Comedy."
    )
    assert load_template("title_genres_text").render(ITEM) == (
        "Toy Story (1995). Genres: Animation, Comedy. Tags: pixar, fun."
    )
    assert load_template("full").render(ITEM).endswith("brand: Pixar.")
    for name in set(PRESETS) - {"notellm"}:  # an item with nothing but a title still renders
        assert load_template(name).render(BARE).rstrip(".") == "Untitled"
    # NoteLLM's compression prompt: the item as JSON, then the word to compress it into
    prompt = load_template("notellm").render(ITEM)
    assert '{"title": "Toy Story", "year": 1995, "genres": "Animation, Comedy"' in prompt
    assert prompt.endswith('The compression word is: "')
    assert '"content"' not in load_template("notellm").render(BARE)


def test_custom_and_file_templates(tmp_path: Path) -> None:
    custom = load_template("{{ title }} by {{ attrs.get('brand', 'unknown') }}")
    assert custom.render(ITEM) == "Toy Story by Pixar"
    assert custom.render(BARE) == "Untitled by unknown"
    path = tmp_path / "item.j2"
    path.write_text("{{ label }}\n{{ text }}\n")
    from_file = load_template(f"@{path}")
    assert from_file.render(ITEM) == "Toy Story (1995) Tags: pixar, fun."
    assert from_file.hash != custom.hash and len(from_file.hash) == 16


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", "unknown item text template"),
        ("   ", "empty"),
        ("{{ title ", "not valid"),
        ("{{ plot }}", "plot"),
        ("@/does/not/exist", "cannot read"),
        ("{{ title.__class__.__mro__ }}", "unsafe|failed"),
    ],
)
def test_bad_templates_are_clear(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_template(spec)


def test_a_field_missing_on_one_item_names_the_item() -> None:
    template = load_template("{{ attrs.brand }}")
    with pytest.raises(ConfigError, match="'2'"):
        template.render_all([ITEM, BARE])
