"""Reading delimited and JSON-lines files into typed columns, with errors that name the line.

The fast path parses with pandas and validates whole columns at once. When anything is
wrong, a line-by-line scan applying the same rules finds the first bad line and reports it,
so every error names the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recagent.data.textfile import open_text_file, shown
from recagent.errors import DataError

Kind = Literal["id", "numeric_id", "int", "float", "text"]
_INT = re.compile(r"^[+-]?\d+$")
_INT_DIGITS = 18  # any integer of up to 18 digits fits in int64
_SEP_NAMES = {"\t": "tab", ",": "comma", "|": "'|'", "::": "'::'", ";": "';'"}


@dataclass(frozen=True)
class Column:
    """A column to read. `id`, `numeric_id` (digits only, kept as text) and `int` must be
    present; `float` and `text` may be empty unless `required`."""

    name: str
    kind: Kind = "text"
    required: bool = False

    @property
    def must_be_present(self) -> bool:
        return self.required or self.kind in ("id", "numeric_id", "int")


@dataclass(frozen=True)
class TableSpec:
    """How to read one delimited file.

    Without a header, `columns` are the file's fields in order and every line must have
    exactly that many. With a header, `columns` are looked up by name and extra columns are
    ignored.
    """

    path: Path
    sep: str
    columns: tuple[Column, ...]
    header: bool = False
    encoding: str = "utf-8"
    quoting: bool = True

    @property
    def sep_name(self) -> str:
        return _SEP_NAMES.get(self.sep, repr(self.sep))


def _valid_number(value: str, kind: Kind) -> bool:
    """An int64 for `int`; a finite number for `float`."""
    if kind == "int":
        return bool(_INT.match(value)) and len(value.lstrip("+-")) <= _INT_DIGITS
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _check_value(spec_path: Path, line: int, col: Column, value: str) -> None:
    if value == "":
        if col.must_be_present:
            what = "id" if col.kind in ("id", "numeric_id") else "value"
            raise DataError(spec_path, f"empty {what} in column '{col.name}'", line)
        return
    if col.kind == "numeric_id" and not value.isdigit():
        raise DataError(
            spec_path, f"column '{col.name}' should be a numeric id, got {shown(value)}", line
        )
    if col.kind in ("int", "float") and not _valid_number(value, col.kind):
        kind = "an integer" if col.kind == "int" else "a number"
        raise DataError(
            spec_path, f"column '{col.name}' should be {kind}, got {shown(value)}", line
        )


def _lines(spec: TableSpec) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-blank line, decoding line by line."""
    with spec.path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode(spec.encoding)
            except UnicodeDecodeError as exc:
                raise DataError(
                    spec.path,
                    f"not valid {spec.encoding.removesuffix('-sig')} text (byte {exc.start + 1}); "
                    "pass the right --encoding",
                    number,
                ) from exc
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            if spec.sep == "::" or not spec.quoting:
                fields = text.split(spec.sep)
            else:
                try:
                    fields = next(csv.reader([text], delimiter=spec.sep))
                except csv.Error as exc:
                    raise DataError(spec.path, _csv_problem(exc), number) from None
            yield number, fields


def _first_line(exc: Exception) -> str:
    """The parser's own reason, on one short line."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= 120 else f"{line[:120]}..."


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        limit = csv.field_size_limit()
        return f"a field is longer than {limit:,} characters (an unclosed quote?)"
    return f"cannot parse it as {exc}"


def _header_positions(spec: TableSpec, header: Sequence[str], line: int) -> list[int]:
    names = [h.strip() for h in header]
    positions = []
    for col in spec.columns:
        if col.name not in names:
            raise DataError(
                spec.path,
                f"no column '{col.name}' in the header (found: {', '.join(names)}); "
                f"is the separator {spec.sep_name}?",
                line,
            )
        positions.append(names.index(col.name))
    return positions


def _scan(spec: TableSpec) -> DataError | None:
    """Find the first problem line by line (the slow, precise path)."""
    lines = _lines(spec)
    try:
        width = len(spec.columns)
        positions = list(range(width))
        if spec.header:
            number, header = next(lines, (1, []))
            positions = _header_positions(spec, header, number)
            width = len(header)
        seen_rows = False
        for number, fields in lines:
            seen_rows = True
            if len(fields) != width:
                return DataError(
                    spec.path,
                    f"expected {width} {spec.sep_name}-separated fields, found {len(fields)}"
                    + (" (truncated line?)" if len(fields) < width else ""),
                    number,
                )
            for col, pos in zip(spec.columns, positions, strict=True):
                _check_value(spec.path, number, col, fields[pos].strip())
        if not seen_rows:
            return DataError(spec.path, "no data rows", 2 if spec.header else 1)
    except DataError as exc:
        return exc
    return None


def _fail(spec: TableSpec, fallback: str) -> DataError:
    return _scan(spec) or DataError(spec.path, fallback)


def _read_frame(spec: TableSpec) -> pd.DataFrame:
    kwargs: dict = {
        "dtype": str,
        "keep_default_na": False,
        "skip_blank_lines": True,
        "encoding": spec.encoding,
        "header": 0 if spec.header else None,
        "index_col": False,
    }
    if not spec.quoting:
        kwargs["quoting"] = csv.QUOTE_NONE
    if spec.header:
        kwargs["usecols"] = lambda name: name.strip() in {c.name for c in spec.columns}
    else:
        kwargs["names"] = [c.name for c in spec.columns]
    source: Path | io.StringIO = spec.path
    sep = spec.sep
    if sep == "::":  # multi-character separators force pandas' slow python engine
        source = io.StringIO(spec.path.read_text(encoding=spec.encoding).replace("::", "\x1f"))
        sep = "\x1f"
    frame = pd.read_csv(source, sep=sep, engine="c", **kwargs)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_table(spec: TableSpec) -> dict[str, np.ndarray]:
    """Read the spec's columns: `id`/`text` as str arrays, `int` as int64, `float` as float64
    (NaN where empty)."""
    spec = replace(spec, encoding=open_text_file(spec.path, spec.encoding))
    try:
        frame = _read_frame(spec)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OverflowError, csv.Error) as e:
        raise _fail(spec, f"cannot parse it ({_first_line(e)})") from None
    except pd.errors.EmptyDataError:
        raise DataError(spec.path, "file is empty", 1) from None
    if frame.empty or any(c.name not in frame.columns for c in spec.columns):
        raise _fail(spec, "no data rows")
    _check_widths(spec)
    out: dict[str, np.ndarray] = {}
    for col in spec.columns:
        values = frame[col.name].str.strip()
        empty = values == ""
        if col.must_be_present and empty.any():
            raise _fail(spec, f"empty values in column '{col.name}'")
        if col.kind == "numeric_id" and not values.str.isdigit().all():
            raise _fail(spec, f"non-numeric ids in column '{col.name}'")
        if col.kind in ("id", "numeric_id", "text"):
            out[col.name] = values.to_numpy(dtype=str)
            continue
        numbers = pd.to_numeric(values.where(~empty), errors="coerce").astype(np.float64)
        bad = (~np.isfinite(numbers) & ~empty).any() or (
            col.kind == "int"
            and not (
                values.str.fullmatch(_INT.pattern).all()
                and (values.str.lstrip("+-").str.len() <= _INT_DIGITS).all()
            )
        )
        if bad:
            raise _fail(spec, f"non-numeric values in column '{col.name}'")
        if col.kind == "int":
            numbers = pd.to_numeric(values)  # exact: float64 loses digits past 2**53
        dtype = np.int64 if col.kind == "int" else np.float64
        out[col.name] = numbers.to_numpy(dtype=dtype)
    return out


def _check_widths(spec: TableSpec) -> None:
    """Confirm every line has as many fields as the first (pandas pads short lines silently)."""
    width = None if spec.header else len(spec.columns)
    if spec.sep == "::" or not spec.quoting:
        sep = spec.sep.encode(spec.encoding.removesuffix("-sig"))
        lines = [ln for ln in spec.path.read_bytes().splitlines() if ln.strip()]
        counts = np.fromiter((ln.count(sep) + 1 for ln in lines), dtype=np.int64, count=len(lines))
    else:
        try:
            with spec.path.open(encoding=spec.encoding, newline="") as fh:
                counts = np.fromiter(
                    (len(r) for r in csv.reader(fh, delimiter=spec.sep) if r), np.int64
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _fail(spec, f"cannot parse it ({_first_line(exc)})") from None
    if width is None:
        width = int(counts[0])
    if (counts != width).any():
        raise _fail(spec, "lines with the wrong number of fields")


def _json_objects(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    encoding = open_text_file(path, encoding)
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode(encoding))
            except UnicodeDecodeError as exc:
                raise DataError(
                    path,
                    f"not valid {encoding.removesuffix('-sig')} text (byte {exc.start + 1}); "
                    "pass the right --encoding",
                    number,
                ) from None
            except ValueError as exc:  # JSONDecodeError, or an integer of 4,300+ digits
                reason = shown(str(exc), 120)
                raise DataError(path, f"not a JSON object ({reason})", number) from None
            except RecursionError:
                raise DataError(path, "not a JSON object (nested too deeply)", number) from None
            if not isinstance(obj, dict):
                raise DataError(path, "each line must be a JSON object", number)
            yield number, obj


def first_json_keys(path: Path, encoding: str = "utf-8") -> set[str]:
    """The keys of the first object in a JSON-lines file."""
    for _, obj in _json_objects(path, encoding):
        return set(obj)
    return set()


def read_jsonl(path: Path, columns: Sequence[Column], encoding: str = "utf-8") -> dict:
    """Read JSON lines (one object per line) into the same column arrays as `read_table`."""
    raw: dict[str, list] = {c.name: [] for c in columns}
    for number, obj in _json_objects(path, encoding):
        for col in columns:
            value = obj.get(col.name)
            if isinstance(value, list) and col.kind == "text":
                value = "|".join(str(v) for v in value)
            text = "" if value is None else str(value).strip()
            _check_value(path, number, col, text)
            raw[col.name].append(text)
    if not raw[columns[0].name]:
        raise DataError(path, "no data rows", 1)
    out: dict[str, np.ndarray] = {}
    for col in columns:
        values = raw[col.name]
        if col.kind == "int":
            out[col.name] = np.array([int(v) for v in values], dtype=np.int64)
        elif col.kind == "float":
            out[col.name] = np.array([float(v) if v else np.nan for v in values], dtype=float)
        else:
            out[col.name] = np.array(values, dtype=str)
    return out


def header_of(path: Path, sep: str, encoding: str = "utf-8") -> list[str]:
    """The column names on the first line of a delimited file."""
    spec = TableSpec(path, sep, (), header=True, encoding=open_text_file(path, encoding))
    for _, fields in _lines(spec):
        return [h.strip() for h in fields]
    raise DataError(path, "file is empty", 1)


def line_of_row(spec: TableSpec, row: int) -> int:
    """The line number of data row `row` (0-based), counting the header and blank lines."""
    seen = -1
    for number, _ in _lines(spec):
        if spec.header and number == 1:
            continue
        seen += 1
        if seen == row:
            return number
    return row + 1


__all__ = [
    "Column",
    "TableSpec",
    "first_json_keys",
    "header_of",
    "line_of_row",
    "read_jsonl",
    "read_table",
]
