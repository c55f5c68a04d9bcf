"""What reaches a terminal: text from users, catalogs, logs and models is shown, never obeyed.

Control characters and escape sequences (ESC, CR, BEL, the C1 range, bidirectional overrides)
in a message, an item title or a log line could recolour the terminal, retitle the window or
hide text. `printable` writes them as escapes (``\\x1b``); `SafeConsole` applies it to every
string a rich console renders (tables, titles, plain prints), so commands need not remember
to. JSON output does not go through it and stays exact.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates that reorder what is displayed.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character and bidi override written as an escape."""
    return _UNSAFE.sub(_escaped, text)


class SafeConsole(Console):
    """A rich console that shows control characters in the strings it renders as escapes."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text), **kwargs)


class PrintableLogFilter(logging.Filter):
    """Escapes control characters in log messages (they may quote user input)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(record.getMessage())
        record.args = None
        return True


__all__ = ["PrintableLogFilter", "SafeConsole", "printable"]
