"""Texts to predict, streamed from a data file or a plain-text file, in chunks bounded in count and size."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from seq2labels.data.readers import decode_line, detect_format, iter_examples, iter_lines
from seq2labels.errors import Seq2LabelsError

CHUNK_CHARS = 1 << 24  # a predict chunk also stops at 16M characters, so long lines keep memory flat


def take_chunk(texts: Iterator[str], max_texts: int, max_chars: int | None = None) -> list[str]:
    """The next texts of the stream: ``max_texts`` of them, or fewer once they hold ``max_chars``
    (default :data:`CHUNK_CHARS`) characters together (at least one text), so memory is bounded
    in bytes, not only in lines."""
    max_chars = CHUNK_CHARS if max_chars is None else max_chars
    chunk: list[str] = []
    chars = 0
    for text in texts:
        chunk.append(text)
        chars += len(getattr(text, "text", text))  # an Example (image model) counts its text
        if len(chunk) >= max_texts or chars >= max_chars:
            break
    return chunk


def iter_input_texts(path: str, fmt: str | None, encoding_errors: str) -> Iterator[str]:
    """Texts to predict, streamed: a labelled data file, or plain text with one text per line."""
    if fmt == "text" or (fmt is None and _looks_like_plain_text(path)):
        yield from _iter_text_lines(path, encoding_errors)
        return
    for example in iter_examples(path, fmt or detect_format(path), encoding_errors=encoding_errors):
        yield example.text


def _looks_like_plain_text(path: str) -> bool:
    try:
        detect_format(path)
        return False
    except Seq2LabelsError:
        return Path(path).suffix.lower() in (".txt", ".text", "")


def _iter_text_lines(path: str, encoding_errors: str) -> Iterator[str]:
    """One text per line (plain or gzip; BOM and CRLF accepted); every line is a text, even an empty one."""
    for number, raw in iter_lines(path):
        yield decode_line(raw, path, number, encoding_errors)
