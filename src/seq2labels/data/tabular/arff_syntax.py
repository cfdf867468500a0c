"""ARFF syntax: quoted tokens and comma-separated values, and the ``@attribute`` declarations of the
header (numeric and nominal attributes, as :class:`_Attribute`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from seq2labels.errors import DataFormatError

_NUMERIC_TYPES = ("numeric", "real", "integer")
_UNSUPPORTED_TYPES = ("string", "date", "relational")


@dataclass
class _Attribute:
    name: str
    kind: str                              # "numeric" or "nominal"
    line: int
    values: tuple[str, ...] = ()           # nominal: declared values
    numbers: tuple[float, ...] | None = None  # nominal: the values as numbers, when they all are

    def codes(self) -> dict[str, float]:
        """Nominal value -> number stored in X/Y."""
        if self.numbers is not None:
            return dict(zip(self.values, self.numbers))
        return {v: float(i) for i, v in enumerate(self.values)}

    def default(self) -> float:
        """Value of an attribute omitted from a sparse row."""
        if self.kind == "numeric":
            return 0.0
        return self.codes()[self.values[0]]


# --------------------------------------------------------------------------- tokenizing


def _read_quoted(text: str, i: int, path, line_no: int) -> tuple[str, int]:
    """Read a quoted token starting at ``text[i]`` (a quote); return (value, index after it)."""
    quote = text[i]
    i += 1
    buf = []
    while i < len(text) and text[i] != quote:
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        buf.append(text[i])
        i += 1
    if i >= len(text):
        raise DataFormatError(f"unterminated {quote} quote", path=path, line=line_no)
    return "".join(buf), i + 1


def _split_values(text: str, path, line_no: int) -> list[str]:
    """Split a comma-separated list, honouring ' and \" quotes with backslash escapes."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "'\"":
            value, i = _read_quoted(text, i, path, line_no)
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                raise DataFormatError(f"unexpected text after the quoted value {value!r}", path=path, line=line_no)
        else:
            j = text.find(",", i)
            j = n if j == -1 else j
            value = text[i:j].strip()
            i = j
        out.append(value)
        if i >= n:
            return out
        i += 1


def _take_name(text: str, path, line_no: int) -> tuple[str, str]:
    """Split ``text`` into a (possibly quoted) name and the rest."""
    text = text.strip()
    if not text:
        raise DataFormatError("missing name", path=path, line=line_no)
    if text[0] in "'\"":
        name, end = _read_quoted(text, 0, path, line_no)
        return name, text[end:]
    match = re.match(r"[^\s{]+", text)
    return match.group(0), text[match.end():]


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- header


def _parse_attribute(rest: str, path, line_no: int) -> _Attribute:
    name, type_text = _take_name(rest, path, line_no)
    type_text = type_text.strip()
    if not type_text:
        raise DataFormatError(f"attribute {name!r} has no type", path=path, line=line_no)
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise DataFormatError(f"nominal attribute {name!r}: missing closing '}}'", path=path, line=line_no)
        values = tuple(_split_values(type_text[1:-1], path, line_no))
        if not values or any(v == "" for v in values):
            raise DataFormatError(f"nominal attribute {name!r} has an empty value list or an empty value",
                                  path=path, line=line_no)
        if len(set(values)) != len(values):
            raise DataFormatError(f"nominal attribute {name!r} declares a value twice", path=path, line=line_no)
        numbers = [_as_number(v) for v in values]
        return _Attribute(name, "nominal", line_no, values,
                          None if any(x is None for x in numbers) else tuple(numbers))
    kind = type_text.split()[0].lower()
    if kind in _NUMERIC_TYPES:
        return _Attribute(name, "numeric", line_no)
    if kind in _UNSUPPORTED_TYPES:
        raise DataFormatError(f"attribute {name!r}: type {kind!r} is not supported (only numeric and nominal "
                              "attributes)", path=path, line=line_no)
    raise DataFormatError(f"attribute {name!r}: unknown attribute type {type_text.split()[0]!r} (expected "
                          "numeric, real, integer or a nominal {...} list)", path=path, line=line_no)


@dataclass
class _Header:
    relation: str
    relation_line: int | None
    attributes: list[_Attribute]


def _keyword(line: str) -> str:
    return line.split(None, 1)[0].lower()
