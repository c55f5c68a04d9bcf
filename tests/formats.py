"""Every input format `recagent data prepare` reads, as a small good dataset per format, and a
seeded generator of inputs that are malformed by construction (for the fuzz and file-error
tests): random bytes, truncated lines, wrong separators, huge fields, mixed encodings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

USERS, ITEMS = 6, 8


def _ratings() -> list[tuple[int, int, int, int]]:
    return [
        (u, 1 + (u + t) % ITEMS, 1 + (u * t) % 5, 1000 * u + t)
        for u in range(1, USERS + 1)
        for t in range(5)
    ]


def _title(i: int) -> str:
    return f"Movie, Number {i} (19{80 + i})" if i % 3 == 0 else f"Movie {i} (19{80 + i})"


@dataclass(frozen=True)
class FileSpec:
    """One file of a format: how it is laid out and which columns the loader checks as
    numbers (`ints` must be integers, `floats` numbers, `ids` digits-only ids)."""

    name: str
    sep: str  # "" for JSON lines
    encoding: str = "utf-8"
    header: bool = False
    ints: tuple[int | str, ...] = ()
    floats: tuple[int | str, ...] = ()
    ids: tuple[int | str, ...] = ()


@dataclass(frozen=True)
class Format:
    name: str
    files: tuple[FileSpec, ...]
    write: Callable[[Path], None]
    args: Callable[[Path], list[str]]  # `data prepare` arguments for a folder in this format
    tags: dict[str, str] = field(default_factory=dict)


def _lines(folder: Path, name: str, rows: list[str], encoding: str = "utf-8") -> None:
    (folder / name).write_bytes(("\n".join(rows) + "\n").encode(encoding))


def _write_generic(sep: str, ext: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        def row(*values: object) -> str:
            return sep.join(f'"{v}"' if sep in str(v) else str(v) for v in values)

        items = [row("item_id", "title", "genres", "year")]
        items += [row(f"i{i}", _title(i), "Drama|Comedy", 1980 + i) for i in range(1, ITEMS + 1)]
        inter = [row("user_id", "item_id", "rating", "timestamp")]
        inter += [row(f"u{u}", f"i{i}", r, t) for u, i, r, t in _ratings()]
        _lines(folder, f"items.{ext}", items)
        _lines(folder, f"interactions.{ext}", inter)

    return write


def _write_jsonl(folder: Path) -> None:
    items = [
        json.dumps({"item_id": f"i{i}", "title": _title(i), "genres": "Drama", "year": 1980 + i})
        for i in range(1, ITEMS + 1)
    ]
    inter = [
        json.dumps({"user_id": f"u{u}", "item_id": f"i{i}", "rating": r, "timestamp": t})
        for u, i, r, t in _ratings()
    ]
    _lines(folder, "items.jsonl", items)
    _lines(folder, "interactions.jsonl", inter)


def _write_ml100k(folder: Path) -> None:
    _lines(folder, "u.data", [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in _ratings()])
    flags = ["0"] * 19
    items = [
        "|".join([str(i), f"Film {i} (19{80 + i})", "01-Jan-1995", "", "http://x", *flags])
        for i in range(1, ITEMS + 1)
    ]
    _lines(folder, "u.item", items, "latin-1")
    users = [f"{u}|{20 + u}|M|writer|0000{u}" for u in range(1, USERS + 1)]
    _lines(folder, "u.user", users, "latin-1")


def _write_ml1m(folder: Path) -> None:
    _lines(folder, "ratings.dat", [f"{u}::{i}::{r}::{t}" for u, i, r, t in _ratings()], "latin-1")
    movies = [f"{i}::Film {i} (19{80 + i})::Drama|Comedy" for i in range(1, ITEMS + 1)]
    _lines(folder, "movies.dat", movies, "latin-1")
    users = [f"{u}::F::25::{u}::0000{u}" for u in range(1, USERS + 1)]
    _lines(folder, "users.dat", users, "latin-1")


def _write_ml_csv(folder: Path) -> None:
    _lines(
        folder,
        "ratings.csv",
        ["userId,movieId,rating,timestamp", *(f"{u},{i},{r}.0,{t}" for u, i, r, t in _ratings())],
    )
    movies = [f'{i},"{_title(i)}",Drama|Comedy' for i in range(1, ITEMS + 1)]
    _lines(folder, "movies.csv", ["movieId,title,genres", *movies])
    _lines(folder, "tags.csv", ["userId,movieId,tag,timestamp", "1,1,funny,5", "2,3,dark,6"])
    _lines(folder, "links.csv", ["movieId,imdbId,tmdbId", *(f"{i},{i:07d},{i}" for i in (1, 2))])


def _generic_args(ext: str) -> Callable[[Path], list[str]]:
    def args(folder: Path) -> list[str]:
        items, inter = folder / f"items.{ext}", folder / f"interactions.{ext}"
        return ["--items", str(items), "--interactions", str(inter)]

    return args


def _generic_files(ext: str, sep: str) -> tuple[FileSpec, ...]:
    return (
        FileSpec(f"items.{ext}", sep, header=True, floats=("year",)),
        FileSpec(f"interactions.{ext}", sep, header=True, floats=("rating", "timestamp")),
    )


FORMATS = {
    "csv": Format(
        "csv", _generic_files("csv", ","), _write_generic(",", "csv"), _generic_args("csv")
    ),
    "tsv": Format(
        "tsv", _generic_files("tsv", "\t"), _write_generic("\t", "tsv"), _generic_args("tsv")
    ),
    "jsonl": Format("jsonl", _generic_files("jsonl", ""), _write_jsonl, _generic_args("jsonl")),
    "ml-100k": Format(
        "ml-100k",
        (
            FileSpec("u.data", "\t", ints=(3,), floats=(2,), ids=(0, 1)),
            FileSpec("u.item", "|", "latin-1", ints=tuple(range(5, 24)), ids=(0,)),
            FileSpec("u.user", "|", "latin-1", ints=(1,), ids=(0,)),
        ),
        _write_ml100k,
        lambda d: ["--dataset", "ml-100k", "--source", str(d)],
    ),
    "ml-1m": Format(
        "ml-1m",
        (
            FileSpec("ratings.dat", "::", "latin-1", ints=(3,), floats=(2,), ids=(0, 1)),
            FileSpec("movies.dat", "::", "latin-1", ids=(0,)),
            FileSpec("users.dat", "::", "latin-1", ints=(2,), ids=(0,)),
        ),
        _write_ml1m,
        lambda d: ["--dataset", "ml-1m", "--source", str(d)],
    ),
    "ml-csv": Format(
        "ml-csv",
        (
            FileSpec("ratings.csv", ",", header=True, ints=(3,), floats=(2,), ids=(0, 1)),
            FileSpec("movies.csv", ",", header=True, ids=(0,)),
            FileSpec("tags.csv", ",", header=True, ids=(1,)),
            FileSpec("links.csv", ",", header=True, ids=(0,)),
        ),
        _write_ml_csv,
        lambda d: ["--dataset", "ml-latest-small", "--source", str(d)],
    ),
}

KINDS = ("random bytes", "truncated line", "wrong separator", "huge field", "mixed encoding")


def _data_lines(spec: FileSpec, lines: list[bytes]) -> list[int]:
    return [n for n, line in enumerate(lines) if line.strip() and not (spec.header and n == 0)]


def _split(spec: FileSpec, line: str) -> list[str]:
    if spec.sep in (",", "\t"):
        return next(csv.reader([line], delimiter=spec.sep))
    return line.split(spec.sep)


def _join(spec: FileSpec, fields: list[str]) -> str:
    if spec.sep in (",", "\t"):
        out = io.StringIO()
        csv.writer(out, delimiter=spec.sep, lineterminator="").writerow(fields)
        return out.getvalue()
    return spec.sep.join(fields)


def _truncated(rng: np.random.Generator, spec: FileSpec, line: bytes) -> bytes:
    """`line` cut so that at least one field (or the JSON object's end) is lost."""
    if not spec.sep:
        return line[: int(rng.integers(1, len(line) - 1))]
    last = line.rfind(spec.sep.encode())
    # never inside quotes: an open quote may pair with one on a later line, which is valid CSV
    cuts = [c for c in range(1, last + 1) if line[:c].count(b'"') % 2 == 0]
    return line[: cuts[int(rng.integers(len(cuts)))]]


def _huge(rng: np.random.Generator, spec: FileSpec, line: bytes) -> bytes:
    """A huge value in a column the loader checks as a number or a numeric id."""
    text = line.decode(spec.encoding)
    size = int(rng.integers(20_000, 300_000))
    columns = [*spec.ints, *spec.floats, *spec.ids]
    column = columns[int(rng.integers(len(columns)))]
    digits = column not in spec.ids and rng.random() < 0.5  # too many digits, else letters
    value = "9" * size if digits else "x" * size
    if not spec.sep:
        obj = json.loads(text)
        obj[column] = int(value) if digits and size < 4000 else value
        return json.dumps(obj).encode()
    fields = _split(spec, text)
    fields[int(column)] = value
    return _join(spec, fields).encode(spec.encoding)


def _other_sep(spec: FileSpec) -> str:
    return {",": ";", "\t": ",", "|": "\t", "::": ","}[spec.sep]


def _header_index(spec: FileSpec, lines: list[bytes]) -> FileSpec:
    """`spec` with named columns (generic files) turned into positions."""
    if not spec.header or not spec.sep:
        return spec
    names = _split(spec, lines[0].decode(spec.encoding))

    def pos(cols: tuple[int | str, ...]) -> tuple[int | str, ...]:
        return tuple(names.index(c) if isinstance(c, str) else c for c in cols)

    return FileSpec(
        spec.name,
        spec.sep,
        spec.encoding,
        spec.header,
        pos(spec.ints),
        pos(spec.floats),
        pos(spec.ids),
    )


def malformed(fmt: Format, good: Path, seed: int, count: int) -> Iterator[tuple[str, str, bytes]]:
    """`count` (file name, kind, bytes): one file of `fmt` replaced by malformed content,
    the others left good."""
    rng = np.random.default_rng(seed)
    for n in range(count):
        spec = fmt.files[int(rng.integers(len(fmt.files)))]
        kind = KINDS[n % len(KINDS)]
        content = (good / spec.name).read_bytes()
        lines = content.split(b"\n")
        spec = _header_index(spec, lines)
        rows = _data_lines(spec, lines)
        at = rows[int(rng.integers(len(rows)))]
        if kind == "random bytes":
            junk = bytearray(rng.bytes(int(rng.integers(1, 3000))))
            if n % 2:
                junk[int(rng.integers(len(junk)))] = 0  # binary
            bad = b"\xff" + bytes(junk)
        elif kind == "truncated line":
            lines[at] = _truncated(rng, spec, lines[at])
            bad = b"\n".join(lines if rng.random() < 0.5 else lines[: at + 1])
        elif kind == "wrong separator":
            if spec.sep:
                bad = content.replace(spec.sep.encode(), _other_sep(spec).encode())
            else:  # JSON lines written as CSV
                objs = [json.loads(line) for line in lines if line.strip()]
                header = ",".join(objs[0])
                body = [",".join(str(v) for v in o.values()) for o in objs]
                bad = "\n".join([header, *body]).encode()
        elif kind == "huge field":
            lines[at] = _huge(rng, spec, lines[at])
            bad = b"\n".join(lines)
        else:  # mixed encoding: Latin-1 bytes in a UTF-8 file, UTF-16 in a Latin-1 one
            insert = "Amélie".encode("latin-1" if spec.encoding == "utf-8" else "utf-16-le")
            cut = int(rng.integers(0, len(lines[at])))
            lines[at] = lines[at][:cut] + insert + lines[at][cut:]
            bad = b"\n".join(lines)
        yield spec.name, kind, bad


__all__ = ["FORMATS", "KINDS", "FileSpec", "Format", "malformed"]
