"""Is this path a text file we can read, and in which encoding? One answer for every loader.

`open_text_file` turns each way a path can fail to be a readable text file (missing, a
directory, unreadable, empty, binary, UTF-16) into a `DataError` naming it, and honours a
UTF-8 byte-order mark in any format (the file is then read as UTF-8 whatever encoding was
declared: the mark says so). `shown` keeps a bad value quoted in a message short.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np

from recagent.errors import DataError

SNIFF_BYTES = 1 << 16
_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def _wide(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def open_text_file(path: Path, encoding: str) -> str:
    """Check that `path` is a non-empty text file and return the encoding to read it with
    (`utf-8-sig` when it starts with a UTF-8 byte-order mark)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(path, f"unknown encoding {encoding!r} (try utf-8 or latin-1)") from None
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "not a file (a directory)")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise DataError(path, f"cannot read it ({exc.strerror or exc})") from None
    if not head.strip():
        raise DataError(path, "file is empty", line=1)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if _wide(encoding):
        return encoding
    for bom, name in _WIDE_BOMS.items():
        if head.startswith(bom):
            raise DataError(path, f"{name} text (byte-order mark); save it as UTF-8", line=1)
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise DataError(path, f"binary data, not text (a NUL byte at byte {nul + 1})", line)
    return encoding


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters for a one-line message (numpy's text
    and numbers are shown as Python's: 'x', not np.str_('x'))."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value)):,} characters)"


__all__ = ["open_text_file", "shown"]
