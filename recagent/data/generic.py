"""People's own data: an items file and an interactions file (CSV, TSV or JSON lines) with a
column mapping. Ratings and timestamps are optional; without timestamps, file order is the
sequence order."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.catalog import Item
from recagent.data.source import ItemCollector, RawData, split_title_year
from recagent.data.tables import (
    Column,
    TableSpec,
    first_json_keys,
    header_of,
    line_of_row,
    read_jsonl,
    read_table,
)
from recagent.data.textfile import shown
from recagent.errors import ConfigError, DataError

MAX_EPOCH_S = 1e13  # about the year 318,000: anything larger is not a timestamp
DEFAULT_TITLE = "title"
TITLE_FROM_TEXT = 60  # characters of an item's text that stand in for a missing title
RATING_NAMES = ("rating",)
TIMESTAMP_NAMES = ("timestamp", "ts", "time", "date", "datetime", "created_at")


class GenericConfig(BaseModel):
    """Where the files are and which column holds what."""

    model_config = ConfigDict(extra="forbid")

    items: Path
    interactions: Path
    item_id_col: str = "item_id"
    user_id_col: str = "user_id"
    title_col: str = DEFAULT_TITLE
    year_col: str | None = None
    genres_col: str | None = None
    genre_sep: str = "|"
    text_cols: list[str] = Field(default_factory=list)
    attr_cols: list[str] = Field(default_factory=list)
    rating_col: str | None = None
    timestamp_col: str | None = None
    sep: str | None = Field(None, description="Delimiter; inferred from the file extension.")
    encoding: str = "utf-8"


def _file_format(path: Path, sep: str | None) -> str | None:
    """The separator to use, or None for JSON lines."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return None
    if sep is not None:
        return sep
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix in (".csv", ".txt", ""):
        return ","
    raise ConfigError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .jsonl, or --sep")


LineOf = Callable[[int], int]


def _read(cfg: GenericConfig, path: Path, columns: list[Column]) -> tuple[dict, LineOf]:
    sep = _file_format(path, cfg.sep)
    if sep is None:
        cols = read_jsonl(path, columns, cfg.encoding)
        lines = [i for i, ln in enumerate(path.read_bytes().splitlines(), 1) if ln.strip()]
        return cols, lambda row: lines[row] if row < len(lines) else row + 1
    spec = TableSpec(path, sep, tuple(columns), header=True, encoding=cfg.encoding)
    return read_table(spec), lambda row: line_of_row(spec, row)


def _columns(path: Path, sep: str | None, enc: str) -> list[str]:
    """The file's column names: its header, or the keys of its first JSON object (a file that
    cannot be read is a `DataError` naming it)."""
    if sep is not None:
        return header_of(path, sep, enc)
    return sorted(first_json_keys(path, enc))


def _optional(given: str | None, usual: tuple[str, ...], columns: list[str]) -> str | None:
    """An optional column: the configured name, else the first usual name the file has."""
    if given is not None:
        return given
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in usual if name in lowered), None)


def _require(name: str, flag: str, path: Path, columns: list[str], sep: str | None) -> None:
    """A missing column is named, with what the file has and how to map it."""
    if name in columns:
        return
    found = ", ".join(columns) or "none"
    hint = f"name the column that holds it with {flag} NAME"
    if sep is not None and len(columns) == 1:
        hint += f", or set the separator with --sep (read as {sep!r})"
    raise DataError(path, f"no column '{name}' (found: {found}); {hint}", 1)


def _short_title(text: str) -> str:
    """The start of an item's text as its display title (a catalog without titles)."""
    words = " ".join(text.split())
    if len(words) <= TITLE_FROM_TEXT:
        return words
    cut = words[:TITLE_FROM_TEXT].rsplit(" ", 1)[0] or words[:TITLE_FROM_TEXT]
    return cut + "…"


def load_generic(cfg: GenericConfig) -> RawData:
    notes: list[str] = []
    item_sep = _file_format(cfg.items, cfg.sep)
    item_columns = _columns(cfg.items, item_sep, cfg.encoding)
    year_col = _optional(cfg.year_col, ("year",), item_columns)
    genres_col = _optional(cfg.genres_col, ("genres",), item_columns)
    _require(cfg.item_id_col, "--item-id-col", cfg.items, item_columns, item_sep)
    title_col: str | None = cfg.title_col
    if cfg.title_col not in item_columns:
        if cfg.title_col != DEFAULT_TITLE or not cfg.text_cols:
            _require(cfg.title_col, "--title-col", cfg.items, item_columns, item_sep)
        title_col = None
        notes.append(
            f"{cfg.items}: no '{DEFAULT_TITLE}' column; an item's title is the start of its "
            f"'{cfg.text_cols[0]}' (--title-col names a title column)"
        )
    item_cols = [Column(cfg.item_id_col, "id")]
    item_cols += [Column(title_col, required=True)] if title_col else []
    item_cols += [Column(c) for c in [year_col, genres_col] if c]
    item_cols += [Column(c) for c in [*cfg.text_cols, *cfg.attr_cols]]
    icols, item_line = _read(cfg, cfg.items, _unique(item_cols))
    collector = ItemCollector(cfg.items, item_line)
    for row, item_id in enumerate(icols[cfg.item_id_col]):
        text = " ".join(icols[c][row] for c in cfg.text_cols if icols[c][row])
        raw_title = icols[title_col][row] if title_col else ""
        if not title_col:
            raw_title = _short_title(icols[cfg.text_cols[0]][row] or text) or str(item_id)
        title, year = split_title_year(raw_title)
        if year_col:
            year = _year(icols[year_col][row], cfg.items, row, item_line, year_col) or year
        genres = ()
        if genres_col:
            parts = icols[genres_col][row].split(cfg.genre_sep)
            genres = tuple(g.strip() for g in parts if g.strip())
        attrs = {c: icols[c][row] for c in cfg.attr_cols if icols[c][row]}
        item = Item(item_id=item_id, title=title, year=year, genres=genres, text=text, attrs=attrs)
        collector.add(row, raw_title, item)

    inter_sep = _file_format(cfg.interactions, cfg.sep)
    inter_columns = _columns(cfg.interactions, inter_sep, cfg.encoding)
    _require(cfg.user_id_col, "--user-id-col", cfg.interactions, inter_columns, inter_sep)
    _require(cfg.item_id_col, "--item-id-col", cfg.interactions, inter_columns, inter_sep)
    rating_col = _optional(cfg.rating_col, RATING_NAMES, inter_columns)
    ts_col = _optional(cfg.timestamp_col, TIMESTAMP_NAMES, inter_columns)
    if cfg.rating_col:
        _require(cfg.rating_col, "--rating-col", cfg.interactions, inter_columns, inter_sep)
    if cfg.timestamp_col:
        _require(cfg.timestamp_col, "--timestamp-col", cfg.interactions, inter_columns, inter_sep)
    elif ts_col and ts_col.lower() != "timestamp":
        notes.append(
            f"{cfg.interactions}: timestamps read from column '{ts_col}' "
            "(--timestamp-col names another)"
        )
    elif ts_col is None:
        notes.append(
            f"{cfg.interactions}: no timestamp column ({', '.join(TIMESTAMP_NAMES)}); file "
            "order is the sequence order (--timestamp-col names one)"
        )
    inter_cols = [Column(cfg.user_id_col, "id"), Column(cfg.item_id_col, "id")]
    if rating_col:
        inter_cols.append(Column(rating_col, "float", required=True))
    if ts_col:
        inter_cols.append(Column(ts_col, required=True))
    cols, inter_line = _read(cfg, cfg.interactions, inter_cols)
    timestamp = None
    if ts_col:
        timestamp = _timestamps(cols[ts_col], cfg.interactions, inter_line, ts_col)
    return RawData(
        items=collector.items,
        user_id=cols[cfg.user_id_col],
        item_id=cols[cfg.item_id_col],
        rating=cols[rating_col] if rating_col else None,
        timestamp=timestamp,
        interactions_path=cfg.interactions,
        line_of_row=inter_line,
        files=[cfg.items, cfg.interactions],
        notes=notes,
    )


def _unique(columns: list[Column]) -> list[Column]:
    seen: dict[str, Column] = {}
    for col in columns:
        seen.setdefault(col.name, col)
    return list(seen.values())


def _year(value: str, path: Path, row: int, line_of: LineOf, col: str) -> int | None:
    """The year in `value` (a number or an ISO date); the line is looked up only for an
    error (finding it reads the file up to that row)."""
    if not value:
        return None
    try:
        is_date = len(value) > 4 and value[:4].isdigit() and not value[4].isdigit()
        year = float(value[:4]) if is_date else float(value)
    except ValueError:
        year = math.nan
    if not (math.isfinite(year) and abs(year) < 10_000):
        raise DataError(path, f"column '{col}' should be a year, got {shown(value)}", line_of(row))
    return int(year)


def _timestamps(values: np.ndarray, path: Path, line_of: LineOf, col: str) -> np.ndarray:
    """Epoch seconds from numbers or ISO-8601 text."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").astype(np.float64)
    if not numbers.isna().any():
        out_of_range = np.flatnonzero(~(numbers.abs() < MAX_EPOCH_S).to_numpy())
        if len(out_of_range):
            row = int(out_of_range[0])
            raise DataError(
                path,
                f"column '{col}' is not a timestamp in epoch seconds: {shown(values[row])}",
                line_of(row),
            )
        return numbers.to_numpy().astype(np.int64)
    parsed = pd.to_datetime(pd.Series(values), errors="coerce", utc=True, format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            path,
            f"column '{col}' should be a number or an ISO date, got {shown(values[row])}",
            line_of(row),
        )
    return (parsed.astype("int64") // 10**9).to_numpy(dtype=np.int64)


__all__ = ["GenericConfig", "load_generic"]
