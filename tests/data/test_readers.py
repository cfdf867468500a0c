"""Readers: every format, gzip/BOM/CRLF handling, format choice, and every error path."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2labels.data.readers import (
    FORMATS,
    Example,
    detect_format,
    iter_examples,
    read_examples,
)
from seq2labels.errors import DataFormatError

DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data sets not found at {DATA}")
REUTERS_TEST = DATA / "reuters21578" / "test.jsonl.gz"
GOEMO_VALID = DATA / "goemotions" / "valid.jsonl.gz"


def write(path: Path, content: str | bytes, gz: bool = False) -> Path:
    """Write text (UTF-8) or bytes, optionally gzip-compressed."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def jl(*objs: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


# --------------------------------------------------------------------------- parsing


def test_jsonl_basic_ignores_extra_keys(tmp_path):
    p = write(tmp_path / "a.jsonl", jl({"text": "hello world", "labels": ["x", "y"], "id": 7},
                                       {"text": "second", "labels": []}))
    assert read_examples(p) == [Example("hello world", ("x", "y")), Example("second", ())]


def test_jsonl_empty_text_and_label_whitespace_stripped(tmp_path):
    p = write(tmp_path / "a.jsonl", jl({"text": "", "labels": ["  a ", "b\t"]}))
    assert read_examples(p) == [Example("", ("a", "b"))]


def test_gzip_detected_by_magic_bytes_not_suffix(tmp_path):
    p = write(tmp_path / "data.jsonl", jl({"text": "t", "labels": ["a"]}), gz=True)
    assert read_examples(p) == [Example("t", ("a",))]
    p2 = write(tmp_path / "data.tsv.gz", "a b\tsome text\n", gz=True)
    assert read_examples(p2) == [Example("some text", ("a", "b"))]


def test_bom_crlf_and_blank_lines(tmp_path):
    body = ('\ufeff{"text": "one", "labels": ["a"]}\r\n\r\n   \r\n'
            '{"text": "two", "labels": ["b"]}\r\n')
    p = write(tmp_path / "a.jsonl", body)
    assert read_examples(p) == [Example("one", ("a",)), Example("two", ("b",))]


def test_bom_with_gzip_tsv(tmp_path):
    p = write(tmp_path / "a.tsv", "\ufeffa\ttext one\r\n", gz=True)
    assert read_examples(p) == [Example("text one", ("a",))]


def test_tsv_splits_at_first_tab_only_and_empty_label_field(tmp_path):
    p = write(tmp_path / "a.tsv", "a  b\tcol1\tcol2\n\tno labels here\nc\t\n")
    assert read_examples(p) == [
        Example("col1\tcol2", ("a", "b")),
        Example("no labels here", ()),
        Example("", ("c",)),
    ]


def test_fasttext_labels_then_text(tmp_path):
    p = write(tmp_path / "a.ft", "__label__a __label__b some  text __label__c\nplain text\n")
    assert read_examples(p) == [
        Example("some text __label__c", ("a", "b")),
        Example("plain text", ()),
    ]


def test_iter_examples_is_lazy(tmp_path):
    """The generator yields the good first line before it reaches the bad second line."""
    p = write(tmp_path / "a.jsonl", jl({"text": "ok", "labels": []}) + "{bad\n")
    it = iter_examples(p)
    assert next(it) == Example("ok", ())
    with pytest.raises(DataFormatError, match=r"a\.jsonl:2: invalid JSON"):
        next(it)


# --------------------------------------------------------------------------- duplicates


def test_duplicate_labels_kept_once_and_warned_once(tmp_path):
    p = write(tmp_path / "a.jsonl", jl({"text": "1", "labels": ["a"]},
                                       {"text": "2", "labels": ["b", "a", "b"]},
                                       {"text": "3", "labels": ["c", "c"]}))
    with pytest.warns(UserWarning) as record:
        examples = read_examples(p)
    assert [e.labels for e in examples] == [("a",), ("b", "a"), ("c",)]
    dup = [w for w in record if "more than once" in str(w.message)]
    assert len(dup) == 1
    assert "2 line(s)" in str(dup[0].message) and "line 2" in str(dup[0].message)


def test_duplicates_after_stripping_count(tmp_path):
    p = write(tmp_path / "a.tsv", "x x\tt\n")
    with pytest.warns(UserWarning, match="1 line"):
        assert read_examples(p) == [Example("t", ("x",))]


# --------------------------------------------------------------------------- format choice


@pytest.mark.parametrize("name,fmt", [
    ("a.jsonl", "jsonl"), ("a.json", "jsonl"), ("a.ndjson", "jsonl"), ("a.JSONL.gz", "jsonl"),
    ("a.tsv", "tsv"), ("a.tsv.gz", "tsv"), ("a.ft", "fasttext"), ("a.fasttext.gz", "fasttext"),
])
def test_detect_by_extension_without_reading(tmp_path, name, fmt):
    # The file does not even exist: the name alone decides.
    assert detect_format(tmp_path / name) == fmt


@pytest.mark.parametrize("content,fmt", [
    ('\n  {"text": "a", "labels": []}\n', "jsonl"),
    ("__label__x hello\n", "fasttext"),
    ("x y\thello\n", "tsv"),
])
@pytest.mark.parametrize("suffix", [".txt", ".data", ".txt.gz"])
def test_sniff_unknown_extension(tmp_path, content, fmt, suffix):
    p = write(tmp_path / ("f" + suffix), content, gz=suffix.endswith(".gz"))
    assert detect_format(p) == fmt
    assert len(read_examples(p)) == 1


def test_sniff_fails_names_file_and_asks_for_format(tmp_path):
    p = write(tmp_path / "f.txt", "\njust words no tab\n")
    with pytest.raises(DataFormatError, match=r"f\.txt:2: .*explicit format"):
        read_examples(p)


def test_explicit_format_wins_over_extension(tmp_path):
    p = write(tmp_path / "f.jsonl", "lab\ttext\n")
    assert read_examples(p, fmt="tsv") == [Example("text", ("lab",))]


def test_unknown_format_lists_formats(tmp_path):
    p = write(tmp_path / "f.jsonl", jl({"text": "a", "labels": []}))
    with pytest.raises(DataFormatError, match="unknown format 'csv'") as exc:
        read_examples(p, fmt="csv")
    for f in FORMATS:
        assert f in str(exc.value)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("line,pattern,field", [
    ('{"text": "a", "labels": [}', r":2: invalid JSON: Expecting value", None),
    ('["a", "b"]', r":2: expected a JSON object, got list", None),
    ('{"labels": []}', r":2: field 'text': missing field", "text"),
    ('{"text": "a"}', r":2: field 'labels': missing field", "labels"),
    ('{"text": 3, "labels": []}', r":2: field 'text': must be a string, got int", "text"),
    ('{"text": "a", "labels": "x"}', r":2: field 'labels': must be a list", "labels"),
    ('{"text": "a", "labels": [1]}', r":2: field 'labels': .*non-empty string, got 1", "labels"),
    ('{"text": "a", "labels": [""]}', r":2: field 'labels': .*non-empty string", "labels"),
    ('{"text": "a", "labels": ["  "]}', r":2: field 'labels': .*non-empty string", "labels"),
    ('{"text": "a", "labels": [null]}', r":2: field 'labels': .*got None", "labels"),
])
def test_jsonl_errors_name_file_line_field(tmp_path, line, pattern, field):
    p = write(tmp_path / "bad.jsonl", '{"text": "ok", "labels": ["a"]}\n' + line + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl" + pattern) as exc:
        read_examples(p)
    assert str(exc.value).startswith(f"{p}:2:")
    assert exc.value.line == 2 and exc.value.path == str(p) and exc.value.field == field


def test_tsv_line_without_tab(tmp_path):
    p = write(tmp_path / "bad.tsv", "a\tok\n\nno tab here\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:3: .*no tab"):
        read_examples(p)


def test_fasttext_empty_label_name(tmp_path):
    p = write(tmp_path / "bad.ft", "__label__ text\n")
    with pytest.raises(DataFormatError, match=r"bad\.ft:1: .*non-empty string"):
        read_examples(p)


def test_invalid_utf8_strict_and_replace(tmp_path):
    p = write(tmp_path / "bad.tsv", b"a\tfine\nb\tcaf\xe9 au lait\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:2: invalid UTF-8 at byte 5"):
        read_examples(p)
    examples = read_examples(p, encoding_errors="replace")
    assert examples[1] == Example("caf\ufffd au lait", ("b",))


def test_invalid_utf8_in_gzip(tmp_path):
    p = write(tmp_path / "bad.jsonl.gz", b'{"text": "\xff", "labels": []}\n', gz=True)
    with pytest.raises(DataFormatError, match=r"bad\.jsonl\.gz:1: invalid UTF-8"):
        read_examples(p)


def test_unknown_encoding_errors_handler(tmp_path):
    p = write(tmp_path / "a.tsv", "a\tb\n")
    with pytest.raises(ValueError, match="encoding_errors"):
        read_examples(p, encoding_errors="nope")


@pytest.mark.parametrize("content", ["", "\n  \n\r\n", "\ufeff"])
def test_empty_or_blank_file(tmp_path, content):
    p = write(tmp_path / "empty.jsonl", content)
    with pytest.raises(DataFormatError, match=r"empty\.jsonl: no examples"):
        read_examples(p)


def test_empty_gzip_file(tmp_path):
    p = write(tmp_path / "empty.jsonl.gz", "", gz=True)
    with pytest.raises(DataFormatError, match="no examples"):
        read_examples(p)


def test_empty_file_streaming_also_raises(tmp_path):
    p = write(tmp_path / "empty.tsv", "")
    with pytest.raises(DataFormatError, match="no examples"):
        list(iter_examples(p))


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jsonl"
    with pytest.raises(DataFormatError, match=r"nope\.jsonl: file not found"):
        read_examples(p)
    with pytest.raises(DataFormatError, match="file not found"):
        detect_format(tmp_path / "nope.txt")


def test_directory_is_an_error(tmp_path):
    with pytest.raises(DataFormatError, match="directory"):
        read_examples(tmp_path, fmt="jsonl")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(jl(*[{"text": "x" * 50, "labels": ["a"]}] * 200).encode())
    p = write(tmp_path / "trunc.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"trunc\.jsonl\.gz:\d+: corrupt gzip"):
        read_examples(p)


# --------------------------------------------------------------------------- real data


@needs_shared_data
def test_reuters_test_split():
    with pytest.warns(UserWarning, match="first at line 2192"):  # one doc lists 'trade' twice
        examples = read_examples(REUTERS_TEST)
    assert len(examples) == 3019
    assert all(isinstance(e.text, str) and e.text for e in examples)
    assert examples[2191].labels == ("trade",)
    labels = set(json.loads((DATA / "reuters21578" / "labels.json").read_text()))
    assert {lab for e in examples for lab in e.labels} <= labels


@needs_shared_data
def test_goemotions_valid_split_streams():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no duplicates expected here
        n, n_labels = 0, 0
        for ex in iter_examples(GOEMO_VALID):
            n += 1
            n_labels += len(ex.labels)
    assert n == 5426
    assert n_labels >= n  # every GoEmotions comment has at least one label (or neutral)


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(gzip.compress),
    st.lists(st.sampled_from([b"{", b"}", b'"text"', b'"labels"', b":", b",", b"[", b"]",
                              b'"a"', b"\t", b"\n", b"\r", b" ", b"__label__", b"x", b"\xff",
                              b"\xef\xbb\xbf", b"null", b"1"]), max_size=40).map(b"".join),
), fmt=st.sampled_from([None, *FORMATS]), suffix=st.sampled_from([".txt", ".jsonl", ".bin"]))
def test_random_bytes_parse_or_raise_data_format_error(data, fmt, suffix):
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                examples = read_examples(name, fmt)
            except DataFormatError as err:
                assert str(err).startswith(name)
            else:
                assert examples and all(isinstance(e, Example) for e in examples)
                assert all(lab and lab == lab.strip() for e in examples for lab in e.labels)
    finally:
        os.unlink(name)
