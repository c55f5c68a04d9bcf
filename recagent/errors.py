"""Errors a user can cause and fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class RecagentError(Exception):
    """A problem with the user's input, data or workspace (not a bug in recagent)."""

    exit_code = 2


class DataError(RecagentError):
    """Bad input data, pinned to a file and (when known) a line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.detail = message
        where = f"{self.path}" if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


class ArtifactError(RecagentError):
    """A workspace artifact is missing, stale, or was produced from other data."""


class ConfigError(RecagentError):
    """An invalid setting, option or configuration file."""
