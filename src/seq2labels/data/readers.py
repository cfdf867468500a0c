"""Read multi-label text data sets: JSON Lines, LibMultiLabel TSV and fastText, plain or gzip.

Every malformed input becomes a :class:`~seq2labels.errors.DataFormatError` that names the file
and the 1-based line, so a user can fix the data without reading a traceback.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from seq2labels.errors import DataFormatError

FORMATS = ("jsonl", "tsv", "fasttext")

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
FASTTEXT_PREFIX = "__label__"

_EXTENSION_FORMATS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".tsv": "tsv",
    ".ft": "fasttext",
    ".fasttext": "fasttext",
}

# Errors a corrupt gzip stream raises while it is read; all become DataFormatError.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Example:
    """One document and its (unordered, duplicate-free) label set; an example of an image or fused
    model may also carry an image (a path, bytes or an array) and a features vector."""

    text: str
    labels: tuple[str, ...]
    image: Any = None
    features: tuple[float, ...] | None = None


# --------------------------------------------------------------------------- opening files


@contextmanager
def open_binary(path: PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for reading bytes, decompressing gzip found by its magic bytes.

    The magic bytes are checked (not the ``.gz`` suffix) so a renamed file still works.
    A missing or unreadable file becomes a DataFormatError instead of a raw OSError.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise DataFormatError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataFormatError("is a directory, expected a data file", path=path) from None
    except OSError as err:
        raise DataFormatError(f"cannot open file: {err.strerror or err}", path=path) from None
    try:
        magic = raw.read(2)
        raw.seek(0)
        if magic == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                yield fh
        else:
            yield raw
    finally:
        raw.close()


def iter_lines(path: PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_bytes)`` with the line ending and a leading BOM removed.

    Bytes (not text) are yielded so each line is decoded on its own and a bad byte can be
    reported with its line number.
    """
    line_no = 0
    with open_binary(path) as fh:
        it = iter(fh)
        while True:
            try:
                raw = next(it)
            except StopIteration:
                return
            except _GZIP_ERRORS as err:
                raise DataFormatError(f"corrupt gzip data: {err}", path=path,
                                      line=line_no + 1) from None
            line_no += 1
            if line_no == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM):]
            yield line_no, raw.rstrip(b"\r\n")


def decode_line(raw: bytes, path: PathLike, line_no: int, errors: str = "strict") -> str:
    """Decode one line as UTF-8, naming the byte offset when it is not valid UTF-8."""
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as err:
        raise DataFormatError(
            f"invalid UTF-8 at byte {err.start} of the line "
            f"(pass encoding_errors='replace' to substitute U+FFFD)",
            path=path, line=line_no) from None


# --------------------------------------------------------------------------- format choice


def _strip_gz(name: str) -> str:
    """Drop a trailing ``.gz`` so ``train.jsonl.gz`` is judged by ``.jsonl``."""
    return name[:-3] if name.lower().endswith(".gz") else name


def format_from_extension(path: PathLike) -> str | None:
    """The format implied by the file name, or None when the name does not say."""
    suffix = Path(_strip_gz(Path(path).name)).suffix.lower()
    return _EXTENSION_FORMATS.get(suffix)


def sniff_format(path: PathLike) -> str:
    """Guess the format from the first non-blank line (for ``.txt`` and unknown names)."""
    for line_no, raw in iter_lines(path):
        line = raw.decode("utf-8", errors="replace")
        if not line.strip():
            continue
        head = line.lstrip()
        if head.startswith("{"):
            return "jsonl"
        if head.startswith(FASTTEXT_PREFIX):
            return "fasttext"
        if "\t" in line:
            return "tsv"
        raise DataFormatError(
            "cannot tell the data format from the first line (not a JSON object, no "
            f"'{FASTTEXT_PREFIX}' prefix, no tab); pass an explicit format, one of {FORMATS}",
            path=path, line=line_no)
    raise DataFormatError("no examples (the file is empty or blank)", path=path)


def check_format(fmt: str, path: PathLike | None = None) -> str:
    """Reject a format name that is not one of FORMATS."""
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; expected one of {FORMATS}", path=path)
    return fmt


def check_encoding_errors(errors: str) -> None:
    """Reject an unknown codec error handler before any line is read."""
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise ValueError(f"unknown encoding_errors {errors!r}; use 'strict' or 'replace'") from None


def detect_format(path: PathLike) -> str:
    """The format of ``path``: by extension (after ``.gz``), else sniffed from its content."""
    fmt = format_from_extension(path)
    if fmt is not None:
        return fmt
    return sniff_format(path)


# --------------------------------------------------------------------------- line parsers


def _clean_label(label: object, path: PathLike, line_no: int) -> str:
    """A label must be a non-empty string; surrounding whitespace is not part of it."""
    if not isinstance(label, str) or not label.strip():
        raise DataFormatError(f"each label must be a non-empty string, got {label!r}",
                              path=path, line=line_no, field="labels")
    return label.strip()


def parse_jsonl_line(line: str, path: PathLike, line_no: int) -> tuple[str, list[str]]:
    """Parse ``{"text": str, "labels": [str, ...]}``; other keys are ignored."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"invalid JSON: {err.msg} (column {err.colno})",
                              path=path, line=line_no) from None
    except RecursionError:
        raise DataFormatError("invalid JSON: nested too deeply", path=path, line=line_no) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"expected a JSON object, got {type(obj).__name__}",
                              path=path, line=line_no)
    for key in ("text", "labels"):
        if key not in obj:
            raise DataFormatError("missing field", path=path, line=line_no, field=key)
    text, labels = obj["text"], obj["labels"]
    if not isinstance(text, str):
        raise DataFormatError(f"must be a string, got {type(text).__name__}",
                              path=path, line=line_no, field="text")
    if not isinstance(labels, list):
        raise DataFormatError(f"must be a list of strings, got {type(labels).__name__}",
                              path=path, line=line_no, field="labels")
    return text, [_clean_label(label, path, line_no) for label in labels]


def parse_tsv_line(line: str, path: PathLike, line_no: int) -> tuple[str, list[str]]:
    """Parse ``label1 label2<TAB>text``; only the first tab splits, the text may hold more."""
    if "\t" not in line:
        raise DataFormatError("expected 'labels<TAB>text', found no tab", path=path, line=line_no)
    label_field, text = line.split("\t", 1)
    return text, label_field.split()


def parse_fasttext_line(line: str, path: PathLike, line_no: int) -> tuple[str, list[str]]:
    """Parse ``__label__a __label__b some text``: leading prefixed tokens are labels."""
    tokens = line.split()
    n_labels = 0
    while n_labels < len(tokens) and tokens[n_labels].startswith(FASTTEXT_PREFIX):
        n_labels += 1
    labels = [_clean_label(tok[len(FASTTEXT_PREFIX):], path, line_no)
              for tok in tokens[:n_labels]]
    return " ".join(tokens[n_labels:]), labels


_PARSERS: dict[str, Callable[[str, PathLike, int], tuple[str, list[str]]]] = {
    "jsonl": parse_jsonl_line,
    "tsv": parse_tsv_line,
    "fasttext": parse_fasttext_line,
}


# --------------------------------------------------------------------------- reading


def dedupe_labels(labels: list[str]) -> tuple[tuple[str, ...], bool]:
    """Keep the first occurrence of each label; also say whether anything was dropped."""
    unique = tuple(dict.fromkeys(labels))
    return unique, len(unique) != len(labels)


def _warn_duplicates(path: PathLike, n_lines: int, first_line: int) -> None:
    """One warning per file: a label listed twice is almost always a data bug."""
    warnings.warn(
        f"{path}: {n_lines} line(s) list a label more than once (first at line {first_line}); "
        "kept the first occurrence of each", UserWarning, stacklevel=3)


def iter_examples(path: PathLike, fmt: str | None = None, *,
                  encoding_errors: str = "strict") -> Iterator[Example]:
    """Stream the examples of ``path`` one line at a time (constant memory).

    Raises DataFormatError on the first malformed line, and at the end when the file held no
    examples at all, so a streaming consumer gets the same checks as :func:`read_examples`.
    """
    check_encoding_errors(encoding_errors)
    fmt = check_format(fmt, path) if fmt is not None else detect_format(path)
    parse = _PARSERS[fmt]
    n_examples = 0
    dup_lines, first_dup = 0, 0
    for line_no, raw in iter_lines(path):
        line = decode_line(raw, path, line_no, encoding_errors)
        if not line.strip():
            continue
        text, labels = parse(line, path, line_no)
        unique, had_dups = dedupe_labels(labels)
        if had_dups:
            dup_lines += 1
            first_dup = first_dup or line_no
        n_examples += 1
        yield Example(text=text, labels=unique)
    if dup_lines:
        _warn_duplicates(path, dup_lines, first_dup)
    if n_examples == 0:
        raise DataFormatError("no examples (the file is empty or blank)", path=path)


def read_examples(path: PathLike, fmt: str | None = None, *,
                  encoding_errors: str = "strict") -> list[Example]:
    """Read every example of ``path`` into a list (see :func:`iter_examples`)."""
    examples = list(iter_examples(path, fmt, encoding_errors=encoding_errors))
    if not examples:  # iter_examples already raises; kept so the contract is explicit here
        raise DataFormatError("no examples (the file is empty or blank)", path=path)
    return examples
