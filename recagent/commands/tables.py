"""Tables that stay readable at any width (80 columns when output is piped): ids and numbers
are never shortened or broken; columns that do not fit go into a further table that repeats
the key columns; only free-text columns wrap."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

CELL_COST = 3  # a column's padding (one space each side) and its border
WRAP_MIN = 16  # narrowest a free-text column gets


def _width(header: str, cells: Sequence[str]) -> int:
    """Columns a column needs (cells may hold rich markup)."""
    return max([len(header), *(Text.from_markup(c).cell_len for c in cells)])


def fitted_tables(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    keep: int = 1,
    wrap: Sequence[str] = (),
    title: str | None = None,
) -> list[Table]:
    """`rows` as tables no wider than `width`: the first `keep` columns in each, the others
    in order, as many as fit; columns named in `wrap` are free text and may wrap."""
    columns = [[str(r[i]) for r in rows] for i in range(len(headers))]
    need = [
        min(WRAP_MIN, _width(h, c)) if h in wrap else _width(h, c)
        for h, c in zip(headers, columns, strict=True)
    ]
    key = list(range(min(keep, len(headers))))
    base = 1 + sum(need[i] + CELL_COST for i in key)
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(len(key), len(headers)):
        cost = need[i] + CELL_COST
        if current and used + cost > width:
            groups.append(current)
            current, used = [], base
        current.append(i)
        used += cost
    if current or not groups:
        groups.append(current)
    tables = []
    for n, group in enumerate(groups):
        table = Table(title=title if n == 0 else None)
        for i in [*key, *group]:
            if headers[i] in wrap:
                table.add_column(headers[i], min_width=need[i], overflow="fold")
            else:
                table.add_column(headers[i], no_wrap=True, min_width=need[i], overflow="fold")
        for r in rows:
            table.add_row(*(str(r[i]) for i in [*key, *group]))
        tables.append(table)
    return tables


def print_fitted(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    keep: int = 1,
    wrap: Sequence[str] = (),
    title: str | None = None,
) -> None:
    for table in fitted_tables(headers, rows, console.width, keep, wrap, title):
        console.print(table)


__all__ = ["fitted_tables", "print_fitted"]
