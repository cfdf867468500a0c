"""Errors that name what went wrong and where, so users never read a deep traceback."""

from __future__ import annotations

from pathlib import Path


class Seq2LabelsError(Exception):
    """Base class of every error seq2labels raises on purpose."""


class DataFormatError(Seq2LabelsError, ValueError):
    """A data file (or an in-memory data set) is malformed.

    The message always starts with ``FILE:LINE:`` when a file and line are known,
    like a compiler error, so editors and humans can jump to it.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        if field is not None:
            message = f"field {field!r}: {message}"
        super().__init__(where + message)


class ConfigError(Seq2LabelsError, ValueError):
    """A configuration file or option is invalid (unknown key, wrong type, bad value)."""


class ModelFormatError(Seq2LabelsError, ValueError):
    """A model folder is missing files, has an unknown format version, or is inconsistent."""
