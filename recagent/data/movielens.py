"""Loaders for the official MovieLens formats: 100k, 1M/10M (`::`-separated) and the CSV
releases (20M, 25M, 32M, latest, latest-small)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recagent.data.catalog import AttrValue, Item
from recagent.data.source import ItemCollector, RawData, split_title_year
from recagent.data.tables import Column, TableSpec, line_of_row, read_table
from recagent.errors import DataError

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRE = {"unknown", "(no genres listed)"}
MAX_TAGS = 20


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if path.is_dir():
        raise DataError(path, "not a file (a directory)")
    if not path.is_file():
        raise DataError(path, f"missing: the folder {folder} has no {name}")
    return path


def _optional(folder: Path, name: str) -> Path | None:
    """An optional file of the release: None when absent, a `DataError` when not a file."""
    path = folder / name
    if not path.exists():
        return None
    if not path.is_file():
        raise DataError(path, "not a file (a directory)" if path.is_dir() else "not a file")
    return path


def _line_mapper(spec: TableSpec) -> Callable[[int], int]:
    return lambda row: line_of_row(spec, row)


def _genres(names: list[str]) -> tuple[str, ...]:
    return tuple(g for g in names if g and g not in NO_GENRE)


def _ratings(spec: TableSpec, users: dict[str, dict[str, AttrValue]], files: list[Path]) -> dict:
    cols = read_table(spec)
    names = [c.name for c in spec.columns]
    return {
        "user_id": cols[names[0]],
        "item_id": cols[names[1]],
        "rating": cols[names[2]].astype(np.float64),
        "timestamp": cols[names[3]],
        "interactions_path": spec.path,
        "line_of_row": _line_mapper(spec),
        "users": users,
        "files": files,
    }


def _ids(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, "numeric_id") for n in names)


def load_ml100k(folder: Path) -> RawData:
    """`u.data` (tab-separated), `u.item` ('|', Latin-1, 19 genre flags), `u.user`."""
    genre_path = _optional(folder, "u.genre")
    genre_names = list(ML100K_GENRES)
    if genre_path is not None:
        cols = read_table(
            TableSpec(
                genre_path,
                "|",
                (Column("genre", required=True), Column("pos", "int")),
                encoding="latin-1",
                quoting=False,
            )
        )
        genre_names = [g for _, g in sorted(zip(cols["pos"], cols["genre"], strict=True))]
    item_spec = TableSpec(
        _require(folder, "u.item"),
        "|",
        (
            Column("item_id", "numeric_id"),
            Column("title", required=True),
            Column("release_date"),
            Column("video_release_date"),
            Column("imdb_url"),
            *(Column(f"g{i}", "int") for i in range(len(genre_names))),
        ),
        encoding="latin-1",
        quoting=False,
    )
    cols = read_table(item_spec)
    flags = np.stack([cols[f"g{i}"] for i in range(len(genre_names))], axis=1)
    items = ItemCollector(item_spec.path, _line_mapper(item_spec))
    for row, raw in enumerate(cols["title"]):
        title, year = split_title_year(raw)
        release = cols["release_date"][row]
        if year is None and release[-4:].isdigit():
            year = int(release[-4:])
        attrs: dict[str, AttrValue] = {"release_date": release, "imdb_url": cols["imdb_url"][row]}
        genres = _genres([genre_names[g] for g in np.flatnonzero(flags[row])])
        item = Item(
            item_id=cols["item_id"][row],
            title=title,
            year=year,
            genres=genres,
            attrs={k: v for k, v in attrs.items() if v},
        )
        items.add(row, raw, item)
    users: dict[str, dict[str, AttrValue]] = {}
    user_path = _optional(folder, "u.user")
    if user_path is not None:
        u = read_table(
            TableSpec(
                user_path,
                "|",
                (
                    *_ids("user_id"),
                    Column("age", "int"),
                    Column("gender"),
                    Column("occupation"),
                    Column("zip"),
                ),
                encoding="latin-1",
                quoting=False,
            )
        )
        for i, uid in enumerate(u["user_id"]):
            users[uid] = {
                "age": int(u["age"][i]),
                "gender": u["gender"][i],
                "occupation": u["occupation"][i],
                "zip": u["zip"][i],
            }
    spec = TableSpec(
        _require(folder, "u.data"),
        "\t",
        (*_ids("user_id", "item_id"), Column("rating", "float", True), Column("timestamp", "int")),
        quoting=False,
    )
    files = [item_spec.path, spec.path] + ([user_path] if user_path and users else [])
    return RawData(items=items.items, **_ratings(spec, users, files))


def _items_from_titles(
    spec: TableSpec, cols: dict, tags: dict[str, list[str]], links: dict[str, dict]
) -> list[Item]:
    items = ItemCollector(spec.path, _line_mapper(spec))
    for row, (item_id, raw) in enumerate(zip(cols["item_id"], cols["title"], strict=True)):
        title, year = split_title_year(raw)
        item_tags = tags.get(item_id, [])
        text = ("Tags: " + ", ".join(item_tags) + ".") if item_tags else ""
        item = Item(
            item_id=item_id,
            title=title,
            year=year,
            genres=_genres(cols["genres"][row].split("|")),
            text=text,
            attrs=links.get(item_id, {}),
        )
        items.add(row, raw, item)
    return items.items


def _top_tags(item_ids: np.ndarray, tags: np.ndarray) -> dict[str, list[str]]:
    """Most frequent distinct tags per item (case-insensitive), at most MAX_TAGS."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    shown: dict[tuple[str, str], str] = {}
    for item_id, tag in zip(item_ids, tags, strict=True):
        key = tag.strip().lower()
        if key:
            counts[item_id][key] += 1
            shown.setdefault((item_id, key), tag.strip())
    return {
        item: [shown[(item, k)] for k, _ in c.most_common(MAX_TAGS)] for item, c in counts.items()
    }


def load_ml1m(folder: Path) -> RawData:
    """`ratings.dat`, `movies.dat`, `users.dat` (`::`-separated, Latin-1); 10M has tags.dat."""
    movie_spec = TableSpec(
        _require(folder, "movies.dat"),
        "::",
        (Column("item_id", "numeric_id"), Column("title", required=True), Column("genres")),
        encoding="latin-1",
        quoting=False,
    )
    tags: dict[str, list[str]] = {}
    tag_path = _optional(folder, "tags.dat")
    if tag_path is not None:
        t = read_table(
            TableSpec(
                tag_path,
                "::",
                (*_ids("user_id", "item_id"), Column("tag"), Column("timestamp", "int")),
                encoding="latin-1",
                quoting=False,
            )
        )
        tags = _top_tags(t["item_id"], t["tag"])
    items = _items_from_titles(movie_spec, read_table(movie_spec), tags, {})
    users: dict[str, dict[str, AttrValue]] = {}
    user_path = _optional(folder, "users.dat")
    if user_path is not None:
        u = read_table(
            TableSpec(
                user_path,
                "::",
                (
                    *_ids("user_id"),
                    Column("gender"),
                    Column("age", "int"),
                    Column("occupation"),
                    Column("zip"),
                ),
                encoding="latin-1",
                quoting=False,
            )
        )
        for i, uid in enumerate(u["user_id"]):
            users[uid] = {
                "gender": u["gender"][i],
                "age": int(u["age"][i]),
                "occupation": u["occupation"][i],
                "zip": u["zip"][i],
            }
    spec = TableSpec(
        _require(folder, "ratings.dat"),
        "::",
        (*_ids("user_id", "item_id"), Column("rating", "float", True), Column("timestamp", "int")),
        encoding="latin-1",
        quoting=False,
    )
    files = [movie_spec.path, spec.path] + ([user_path] if user_path and users else [])
    return RawData(items=items, **_ratings(spec, users, files))


def load_ml_csv(folder: Path) -> RawData:
    """`ratings.csv`, `movies.csv`, optional `tags.csv` (item text) and `links.csv`."""
    movie_spec = TableSpec(
        _require(folder, "movies.csv"),
        ",",
        (Column("movieId", "numeric_id"), Column("title", required=True), Column("genres")),
        header=True,
    )
    tags: dict[str, list[str]] = {}
    tag_path = _optional(folder, "tags.csv")
    if tag_path is not None:
        t = read_table(TableSpec(tag_path, ",", (*_ids("movieId"), Column("tag")), header=True))
        tags = _top_tags(t["movieId"], t["tag"])
    links: dict[str, dict] = {}
    link_path = _optional(folder, "links.csv")
    if link_path is not None:
        lk = read_table(
            TableSpec(
                link_path, ",", (*_ids("movieId"), Column("imdbId"), Column("tmdbId")), header=True
            )
        )
        for i, mid in enumerate(lk["movieId"]):
            links[mid] = {k: lk[k][i] for k in ("imdbId", "tmdbId") if lk[k][i]}
    cols = read_table(movie_spec)
    cols = {"item_id": cols["movieId"], "title": cols["title"], "genres": cols["genres"]}
    items = _items_from_titles(movie_spec, cols, tags, links)
    spec = TableSpec(
        _require(folder, "ratings.csv"),
        ",",
        (*_ids("userId", "movieId"), Column("rating", "float", True), Column("timestamp", "int")),
        header=True,
    )
    return RawData(items=items, **_ratings(spec, {}, [movie_spec.path, spec.path]))


__all__ = ["ML100K_GENRES", "load_ml1m", "load_ml100k", "load_ml_csv"]
