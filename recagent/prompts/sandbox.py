"""Rendering templates people write, within a budget: no code execution, no hang, no crash.

Jinja's sandbox already forbids unsafe attributes and caps `range` at 100,000 items. What it
does not stop is work: nested loops, self-calling macros, `'x' * 10**9`. `BoundedSandbox`
adds a render budget:

- time: every `{% for %}` loop, function, macro and filter call checks a deadline
  (`RENDER_BUDGET_S` by default) in the rendering thread's CPU time, so no template runs past
  it, and a render is not cut short because the machine is busy (a wall-clock budget failed
  ordinary explanations on a loaded 2-core machine, and changed evaluation results);
- size: repeating a string or list (`*`), powers (`**`), `%`/`format` widths and numeric
  arguments to calls and filters may not produce more than `MAX_OUTPUT_CHARS` characters, and
  neither may the rendered text.

`render_bounded` turns whatever goes wrong while rendering (`1/0`, an undefined name, a
`RecursionError`, the budget) into one `RenderFailure` with a one-line reason; callers name
the template in their own error.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import Template, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_BUDGET_S = 1.0
MAX_OUTPUT_CHARS = 1_000_000
_CHECK_EVERY = 256  # loop iterations between deadline checks
_BIG_WIDTH = re.compile(r"\d{7,}")  # a format width of a million characters or more
_WIDTH_TAKERS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent"})
_NESTED_SPEC = re.compile(r"\{[^{}]*[:!][^{}]*\{")  # a width given by an argument
_DEADLINE: ContextVar[float | None] = ContextVar("recagent_render_deadline", default=None)


class RenderFailure(Exception):
    """A template failed while rendering; `str()` is a one-line reason."""


class BudgetExceeded(RenderFailure):
    """The template used more time or output than its budget allows."""


def _check_deadline() -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and time.thread_time() > deadline:
        raise BudgetExceeded("it ran past its render budget (endless loops or recursion?)")


def _check_size(value: Any) -> None:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_OUTPUT_CHARS:
        raise BudgetExceeded(f"it built a value longer than {MAX_OUTPUT_CHARS:,} items")


def _check_width(
    name: str, args: Iterable[Any], kwargs: Mapping[str, Any], always: bool = False
) -> None:
    """Refuse a padding width (`center(10**9)`) before the string is built."""
    if name not in _WIDTH_TAKERS and not always:
        return
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and value > MAX_OUTPUT_CHARS:
            raise BudgetExceeded(f"{name}({value:,}) would be longer than {MAX_OUTPUT_CHARS:,}")


def _check_format(spec: object, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse `'{:>999999999}'.format(x)` and widths passed as arguments (`'{:>{w}}'`)."""
    if not isinstance(spec, str):
        return
    if _BIG_WIDTH.search(spec):
        raise BudgetExceeded("a format width is too large")
    if _NESTED_SPEC.search(spec):
        _check_width("format", args, kwargs, always=True)


def budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate `iterable`, checking the render deadline as it goes (wraps every for loop)."""
    for n, value in enumerate(iterable):
        if n % _CHECK_EVERY == 0:
            _check_deadline()
        yield value


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps `jinja_pass_arg`, so context-taking filters still work
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        _check_width(name, args[1:], kwargs)
        result = func(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


def _repeat_size(left: Any, right: Any) -> int:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(count, int):
            return len(seq) * count
    return 0


def _power_too_big(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2:
        return False
    return exponent * math.log2(abs(base)) > 256  # bigger ints are not what prompts need


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable Jinja sandbox with a time and size budget (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}

    def compile(  # type: ignore[override]
        self,
        source: str | nodes.Template,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        """Compile with every for loop's iterable wrapped in `budgeted`."""
        if isinstance(source, str):
            source = self.parse(source, name, filename)
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.ImportedName(f"{__name__}.budgeted"), [loop.iter], [], None, None
            )
        if raw:
            return super().compile(source, name, filename, True, defer_init)
        return super().compile(source, name, filename, False, defer_init)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        name = getattr(obj, "__name__", "")
        _check_width(name, args, kwargs)
        if name in ("format", "format_map"):
            _check_format(getattr(getattr(obj, "__wrapped__", obj), "__self__", None), args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        _check_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _repeat_size(left, right) > MAX_OUTPUT_CHARS:
            raise BudgetExceeded(f"'*' would build more than {MAX_OUTPUT_CHARS:,} items")
        if operator == "**" and _power_too_big(left, right):
            raise BudgetExceeded(f"{left} ** {right} is too large a number")
        if operator == "%" and isinstance(left, str) and _BIG_WIDTH.search(left):
            raise BudgetExceeded("a '%' format width is too large")
        return super().call_binop(context, operator, left, right)


def render_bounded(
    template: Template, context: Mapping[str, Any], budget_s: float = RENDER_BUDGET_S
) -> str:
    """Render `template` (compiled by a `BoundedSandbox`) within `budget_s` CPU seconds and
    `MAX_OUTPUT_CHARS` characters; `RenderFailure` says why it could not."""
    token = _DEADLINE.set(time.thread_time() + budget_s)
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise BudgetExceeded(f"its output is longer than {MAX_OUTPUT_CHARS:,} characters")
            parts.append(part)
        return "".join(parts)
    except RenderFailure:
        raise
    except RecursionError:
        raise RenderFailure("it recurses without end") from None
    except Exception as exc:  # anything a user's template raises is that template's error
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise RenderFailure(f"{type(exc).__name__}: {reason}".rstrip(": ")) from None
    finally:
        _DEADLINE.reset(token)


__all__ = [
    "MAX_OUTPUT_CHARS",
    "RENDER_BUDGET_S",
    "BoundedSandbox",
    "BudgetExceeded",
    "RenderFailure",
    "budgeted",
    "render_bounded",
]
