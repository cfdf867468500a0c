"""Read tabular multi-label data: ARFF (Mulan and MEKA conventions) and CSV, plain or gzip.

``read_arff`` returns a :class:`TabularData` with ``X`` a dense float64 array (or a scipy CSR
matrix when the file has sparse ``{index value, ...}`` rows) and ``Y`` an int64 0/1 matrix.

Which attributes are labels, first match wins:

1. ``label_names=[...]`` or ``xml=PATH`` (a Mulan label file, ``<labels><label name="..."/>``):
   those attributes, in that order (nested hierarchical ``<label>`` elements count too);
2. ``n_labels=L``: the last L attributes (Mulan convention);
3. a MEKA ``@relation 'name: -C L ...'``: the first L attributes, or the last ``-L`` when L < 0;
4. a Mulan XML beside the file: ``<stem>.xml``, else the stem without a ``-train``/``-test``
   (or ``_train``/``_test``) suffix, so ``birds-train.arff.gz`` finds ``birds.xml``.

Every other attribute is a feature, in file order. Attribute types: ``numeric``/``real``/
``integer``, and nominal ``{a, b, ...}``. A nominal attribute whose values are all numbers
(``{0,1}``, ``{1, 2, 3}``) is read as those numbers. A nominal feature with non-numeric values
(e.g. ``{YES,NO}``) is read as the 0-based position of the value in its declaration
(``YES`` -> 0.0, ``NO`` -> 1.0, Weka's internal coding) and listed in
``TabularData.nominal_values``; pass ``nominal="error"`` to refuse such files instead (then
one-hot encode them first). Label attributes must be numeric or nominal ``{0,1}`` and every
label value must be 0 or 1. A missing feature value ``?`` becomes NaN (most estimators refuse
NaN: impute first); a missing label value is an error. ``string``, ``date`` and
``relational`` attributes are not supported. In sparse rows an omitted attribute is 0 (for a
nominal attribute: its first declared value, as in Weka). Instance weights are not supported.

Every problem is a :class:`~seq2labels.errors.DataFormatError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from xml.parsers import expat

import numpy as np
import scipy.sparse as sp

from seq2labels.data.readers import decode_line, iter_lines, open_binary
from seq2labels.errors import DataFormatError

__all__ = ["TabularData", "read_arff", "read_label_csv", "read_mulan_labels"]

PathLike = str | os.PathLike

_NUMERIC_TYPES = ("numeric", "real", "integer")
_UNSUPPORTED_TYPES = ("string", "date", "relational")
_MEKA_C = re.compile(r"(?:^|[\s:'\"])-C\s+(-?\d+)")
_SPLIT_SUFFIX = re.compile(r"[-_](train|test)$", re.IGNORECASE)
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
_WEIGHTED_ROW = re.compile(r"\}\s*,\s*\{[^{}]*\}$")


@dataclass
class TabularData:
    """Features, labels and their names.

    ``X``: (n, n_features) float64, dense ndarray or scipy CSR (sparse ARFF). ``Y``:
    (n, n_labels) int64 0/1. ``nominal_values`` maps each nominal feature read as ordinal codes
    to its declared values (code i = ``values[i]``). ``relation``: the ARFF ``@relation`` name.
    """

    X: np.ndarray | sp.csr_matrix
    Y: np.ndarray
    feature_names: list[str]
    label_names: list[str]
    relation: str = ""
    nominal_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


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


# --------------------------------------------------------------------------- labels


def read_mulan_labels(path: PathLike) -> list[tuple[str, int]]:
    """``(name, line)`` of every ``<label name="...">`` in a Mulan label XML, in document order."""
    labels: list[tuple[str, int]] = []
    parser = expat.ParserCreate(namespace_separator="|")

    def start(tag: str, attrs: dict) -> None:
        local = tag.rsplit("|", 1)[-1]
        if local != "label":
            return
        if "name" not in attrs:
            raise DataFormatError("<label> without a name attribute", path=path, line=parser.CurrentLineNumber)
        labels.append((attrs["name"], parser.CurrentLineNumber))

    parser.StartElementHandler = start
    with open_binary(path) as fh:
        try:
            parser.ParseFile(fh)
        except expat.ExpatError as err:
            raise DataFormatError(f"malformed XML: {expat.ErrorString(err.code)}", path=path,
                                  line=err.lineno) from None
    if not labels:
        raise DataFormatError("no <label name=...> elements: not a Mulan label file", path=path)
    seen: dict[str, int] = {}
    for name, line in labels:
        if name in seen:
            raise DataFormatError(f"label {name!r} is listed twice (first on line {seen[name]})", path=path, line=line)
        seen[name] = line
    return labels


def _sibling_xml(path: Path) -> Path | None:
    name = path.name
    for suffix in (".gz", ".arff"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    candidates = [path.with_name(name + ".xml")]
    base = _SPLIT_SUFFIX.sub("", name)
    if base != name:
        candidates.append(path.with_name(base + ".xml"))
    return next((c for c in candidates if c.is_file()), None)


def _label_indices(header: _Header, path, n_labels, label_names, xml) -> list[int]:
    attrs = header.attributes
    n_attrs = len(attrs)
    if label_names is not None and xml is not None:
        raise ValueError("pass label_names or xml, not both")
    named: list[tuple[str, int | None]] | None = None
    source = path
    if label_names is not None:
        if isinstance(label_names, str):
            raise ValueError("label_names must be a list of attribute names, not a string")
        named = [(str(n), None) for n in label_names]
    elif xml is not None:
        named, source = read_mulan_labels(xml), xml
    elif n_labels is not None:
        if not isinstance(n_labels, int) or isinstance(n_labels, bool) or n_labels < 1:
            raise ValueError(f"n_labels must be an int >= 1; got {n_labels!r}")
        if n_labels > n_attrs:
            raise DataFormatError(f"n_labels={n_labels} is larger than the attribute count ({n_attrs})", path=path)
        return list(range(n_attrs - n_labels, n_attrs))
    else:
        meka = _MEKA_C.search(header.relation)
        if meka:
            c = int(meka.group(1))
            if c == 0 or abs(c) > n_attrs:
                raise DataFormatError(f"MEKA -C {c} in @relation: the label count must be non-zero and at most "
                                      f"the attribute count ({n_attrs})", path=path, line=header.relation_line)
            return list(range(c)) if c > 0 else list(range(n_attrs + c, n_attrs))
        sibling = _sibling_xml(Path(path))
        if sibling is None:
            raise DataFormatError("cannot tell which attributes are labels: pass n_labels=, label_names= or xml=, "
                                  "put a Mulan <name>.xml beside the file, or use a MEKA @relation with -C",
                                  path=path)
        named, source = read_mulan_labels(sibling), sibling
    if len(named) > n_attrs:
        raise DataFormatError(f"{len(named)} labels is more than the attribute count ({n_attrs})", path=path)
    index = {a.name: i for i, a in enumerate(attrs)}
    out = []
    for name, line in named:
        if name not in index:
            raise DataFormatError(f"label {name!r} is not an attribute of {path}", path=source, line=line)
        out.append(index[name])
    if len(set(out)) != len(out):
        raise ValueError("label_names lists an attribute twice")
    return out


# --------------------------------------------------------------------------- data


def _sparse_pairs(inner: str, path, line_no: int) -> list[tuple[str, str]]:
    """``"0 1.5, 7 'a b'"`` -> [("0", "1.5"), ("7", "a b")]."""
    pairs = []
    if not inner.strip():
        return pairs
    if "'" not in inner and '"' not in inner:
        for item in inner.split(","):
            parts = item.split(None, 1)
            if len(parts) != 2:
                raise DataFormatError(f"sparse entry {item.strip()!r} is not 'index value'", path=path, line=line_no)
            pairs.append((parts[0], parts[1].strip()))
        return pairs
    i, n = 0, len(inner)
    while i < n:
        match = re.compile(r"\s*(\S+)\s+").match(inner, i)
        if not match:
            raise DataFormatError(f"sparse entry {inner[i:].strip()!r} is not 'index value'", path=path, line=line_no)
        idx, i = match.group(1), match.end()
        if i < n and inner[i] in "'\"":
            value, i = _read_quoted(inner, i, path, line_no)
            while i < n and inner[i] in " \t":
                i += 1
        else:
            j = inner.find(",", i)
            j = n if j == -1 else j
            value, i = inner[i:j].strip(), j
        pairs.append((idx, value))
        if i < n:
            if inner[i] != ",":
                raise DataFormatError(f"expected ',' after sparse entry {idx}", path=path, line=line_no)
            i += 1
    return pairs


def _bad_value(attr: _Attribute, raw: str, path, line_no: int, is_label: bool) -> DataFormatError:
    raw = str(raw)
    if raw == "?":
        return DataFormatError(f"label attribute {attr.name!r}: missing value '?' (labels must be 0 or 1)",
                               path=path, line=line_no)
    if is_label:
        return DataFormatError(f"label attribute {attr.name!r}: value {raw!r} is not 0 or 1", path=path, line=line_no)
    if attr.kind == "numeric":
        return DataFormatError(f"numeric attribute {attr.name!r}: {raw!r} is not a finite number",
                               path=path, line=line_no)
    return DataFormatError(f"nominal attribute {attr.name!r}: {raw!r} is not one of its declared values "
                           f"{{{', '.join(attr.values)}}}", path=path, line=line_no)


def _convert_dense(rows: list[list[str]], lines: list[int], attrs: list[_Attribute], is_label: list[bool],
                   path) -> np.ndarray:
    """(n, n_attrs) float64 from the rows' strings, column group by column group."""
    table = np.array(rows, dtype=str).reshape(len(rows), len(attrs))
    out = np.empty(table.shape, dtype=np.float64)
    missing = table == "?"

    def fail(cols: np.ndarray, bad: np.ndarray):
        r, c = np.argwhere(bad)[0]
        col = cols[c]
        raise _bad_value(attrs[col], table[r, col], path, lines[r], is_label[col])

    numeric = np.array([i for i, a in enumerate(attrs) if a.kind == "numeric"], dtype=np.int64)
    if len(numeric):
        sub = np.where(missing[:, numeric], "nan", table[:, numeric])
        try:
            values = sub.astype(np.float64)
        except ValueError:
            bad = np.array([[_as_number(v) is None and v != "nan" for v in row] for row in sub])
            fail(numeric, bad)
        bad = ~np.isfinite(values) & ~missing[:, numeric]
        if bad.any():
            fail(numeric, bad)
        out[:, numeric] = values
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, a in enumerate(attrs):
        if a.kind == "nominal":
            groups.setdefault(a.values, []).append(i)
    for cols_list in groups.values():
        cols = np.array(cols_list, dtype=np.int64)
        sub = table[:, cols]
        values = np.full(sub.shape, np.nan)
        matched = missing[:, cols].copy()
        for value, code in attrs[cols[0]].codes().items():
            hit = sub == value
            values[hit] = code
            matched |= hit
        if not matched.all():
            fail(cols, ~matched)
        out[:, cols] = values
    return out


def _convert_sparse_row(pairs, attrs, codes, is_label, path, line_no, row, entries) -> None:
    seen: set[int] = set()
    for idx_text, raw in pairs:
        try:
            idx = int(idx_text)
        except ValueError:
            raise DataFormatError(f"sparse index {idx_text!r} is not an integer", path=path, line=line_no) from None
        if not 0 <= idx < len(attrs):
            raise DataFormatError(f"sparse index {idx} is out of range (0..{len(attrs) - 1})", path=path,
                                  line=line_no)
        if idx in seen:
            raise DataFormatError(f"sparse index {idx} appears twice", path=path, line=line_no)
        seen.add(idx)
        attr = attrs[idx]
        if raw == "?" and not is_label[idx]:
            value = math.nan
        elif attr.kind == "numeric":
            value = _as_number(raw)
            if value is None:
                raise _bad_value(attr, raw, path, line_no, is_label[idx])
        else:
            value = codes[idx].get(raw)
            if value is None:
                raise _bad_value(attr, raw, path, line_no, is_label[idx])
        entries[0].append(row)
        entries[1].append(idx)
        entries[2].append(value)


def read_arff(path: PathLike, n_labels: int | None = None, label_names: Sequence[str] | None = None,
              xml: PathLike | None = None, *, nominal: str = "codes", encoding_errors: str = "strict") -> TabularData:
    """Read a multi-label ARFF file (dense or sparse, plain or gzip); see the module docstring."""
    if nominal not in ("codes", "error"):
        raise ValueError(f"nominal must be 'codes' or 'error'; got {nominal!r}")
    relation, relation_line = "", None
    attrs: list[_Attribute] = []
    names: dict[str, int] = {}
    in_data = False
    dense_rows: list[list[str]] = []
    dense_lines: list[int] = []
    dense_pos: list[int] = []
    sparse_lines: list[tuple[int, int, str]] = []   # (row, line, inner text)
    n_rows = 0
    last_line = 0
    for line_no, raw in iter_lines(path):
        last_line = line_no
        text = decode_line(raw, path, line_no, errors=encoding_errors)
        stripped = text.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if not in_data:
            if not stripped.startswith("@"):
                raise DataFormatError("expected @relation, @attribute or @data before the data", path=path,
                                      line=line_no)
            keyword = _keyword(stripped)
            rest = stripped[len(keyword):]
            if keyword == "@relation":
                rest = rest.strip()
                relation = _take_name(rest, path, line_no)[0] if rest[:1] in ("'", '"') else rest
                relation_line = line_no
            elif keyword == "@attribute":
                attr = _parse_attribute(rest, path, line_no)
                if attr.name in names:
                    raise DataFormatError(f"attribute {attr.name!r} is declared twice (first on line "
                                          f"{attrs[names[attr.name]].line})", path=path, line=line_no)
                names[attr.name] = len(attrs)
                attrs.append(attr)
            elif keyword == "@data":
                if not attrs:
                    raise DataFormatError("@data before any @attribute", path=path, line=line_no)
                in_data = True
            else:
                raise DataFormatError(f"unknown header keyword {keyword!r} (expected @relation, @attribute or "
                                      "@data)", path=path, line=line_no)
            continue
        if stripped.startswith("{"):
            if not stripped.endswith("}") or _WEIGHTED_ROW.search(stripped):
                raise DataFormatError("sparse row: missing closing '}' or a trailing {weight} (instance weights "
                                      "are not supported)", path=path, line=line_no)
            sparse_lines.append((n_rows, line_no, stripped[1:-1]))
        else:
            if "'" in stripped or '"' in stripped:
                parts = _split_values(stripped, path, line_no)
            elif " " in stripped or "\t" in stripped:
                parts = [p.strip() for p in stripped.split(",")]
            else:
                parts = stripped.split(",")
            if len(parts) != len(attrs):
                raise DataFormatError(f"expected {len(attrs)} values (one per attribute), found {len(parts)}",
                                      path=path, line=line_no)
            dense_rows.append(parts)
            dense_lines.append(line_no)
            dense_pos.append(n_rows)
        n_rows += 1
    if not in_data:
        raise DataFormatError("no @data section (the header never ends)" if attrs else
                              "not an ARFF file: no @attribute and no @data", path=path, line=last_line or None)
    if n_rows == 0:
        raise DataFormatError("no data rows after @data (an empty data set)", path=path, line=last_line)

    header = _Header(relation, relation_line, attrs)
    label_idx = _label_indices(header, path, n_labels, label_names, xml)
    is_label = [False] * len(attrs)
    for i in label_idx:
        is_label[i] = True
        a = attrs[i]
        if a.kind == "nominal" and not set(a.values) <= {"0", "1"}:
            raise DataFormatError(f"label attribute {a.name!r} must be numeric or nominal {{0,1}}; got "
                                  f"{{{', '.join(a.values)}}}", path=path, line=a.line)
    feature_idx = [i for i in range(len(attrs)) if not is_label[i]]
    nominal_values = {attrs[i].name: attrs[i].values for i in feature_idx
                      if attrs[i].kind == "nominal" and attrs[i].numbers is None}
    if nominal == "error" and nominal_values:
        first = attrs[names[next(iter(nominal_values))]]
        raise DataFormatError(f"nominal feature {first.name!r} has non-numeric values; one-hot encode it (or "
                              "pass nominal='codes' to read ordinal codes)", path=path, line=first.line)

    lines = np.zeros(n_rows, dtype=np.int64)
    lines[dense_pos] = dense_lines
    dense = (_convert_dense(dense_rows, dense_lines, attrs, is_label, path) if dense_rows
             else np.zeros((0, len(attrs))))
    if not sparse_lines:
        matrix = dense
    else:
        codes = [a.codes() if a.kind == "nominal" else {} for a in attrs]
        entries: tuple[list, list, list] = ([], [], [])
        for row, line_no, inner in sparse_lines:
            lines[row] = line_no
            _convert_sparse_row(_sparse_pairs(inner, path, line_no), attrs, codes, is_label, path, line_no,
                                row, entries)
        rows = np.asarray(entries[0], dtype=np.int64)
        cols = np.asarray(entries[1], dtype=np.int64)
        vals = np.asarray(entries[2], dtype=np.float64)
        sparse_row_ids = np.array([r for r, _, _ in sparse_lines], dtype=np.int64)
        extra_r, extra_c, extra_v = [], [], []
        for c, attr in enumerate(attrs):
            default = attr.default()
            if default != 0.0:
                given = rows[cols == c]
                absent = np.setdiff1d(sparse_row_ids, given)
                extra_r.append(absent)
                extra_c.append(np.full(len(absent), c))
                extra_v.append(np.full(len(absent), default))
        if dense_rows:
            d = sp.coo_matrix(dense)
            extra_r.append(np.asarray(dense_pos, dtype=np.int64)[d.row])
            extra_c.append(d.col)
            extra_v.append(d.data)
        rows = np.concatenate([rows, *extra_r]).astype(np.int64)
        cols = np.concatenate([cols, *extra_c]).astype(np.int64)
        vals = np.concatenate([vals, *extra_v])
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, len(attrs)))

    if sp.issparse(matrix):
        Y = matrix[:, label_idx].toarray()
        X = matrix[:, feature_idx].tocsr()
        X.eliminate_zeros()
    else:
        Y = matrix[:, label_idx]
        X = np.ascontiguousarray(matrix[:, feature_idx])
    bad = ~((Y == 0) | (Y == 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        attr = attrs[label_idx[c]]
        shown = "?" if np.isnan(Y[r, c]) else f"{Y[r, c]:g}"
        raise _bad_value(attr, shown, path, int(lines[r]), True)
    return TabularData(X=X, Y=Y.astype(np.int64), feature_names=[attrs[i].name for i in feature_idx],
                       label_names=[attrs[i].name for i in label_idx], relation=relation,
                       nominal_values=nominal_values)


# --------------------------------------------------------------------------- CSV


def read_label_csv(path: PathLike, label_columns: Sequence[str], feature_columns: Sequence[str] | None = None,
                   *, delimiter: str = ",") -> TabularData:
    """Read a CSV with a header row: ``label_columns`` (0/1) and numeric ``feature_columns``.

    ``feature_columns=None`` takes every column that is not a label, in file order. Plain or
    gzip, UTF-8 with or without BOM, any line ending, quoted fields (the csv module). Blank rows
    are skipped. Errors name the file, the line and the column: a row with the wrong number of
    fields, a label that is not 0 or 1, a feature that is not a number or is NaN/inf.
    """
    if isinstance(label_columns, str):
        label_columns = [label_columns]
    label_columns = list(label_columns)
    if not label_columns:
        raise ValueError("label_columns is empty")
    repeated = sorted({n for n in label_columns if label_columns.count(n) > 1})
    if repeated:
        raise ValueError(f"label_columns lists {repeated[0]!r} more than once")
    if feature_columns is not None and isinstance(feature_columns, str):
        feature_columns = [feature_columns]
    X_rows: list[list[float]] = []
    Y_rows: list[list[int]] = []
    with open_binary(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise DataFormatError("empty file: expected a header row", path=path)
            header = [h.strip() for h in header]
            position: dict[str, int] = {}
            for i, name in enumerate(header):
                if name in position:
                    raise DataFormatError(f"column {name!r} appears twice in the header", path=path, line=1)
                position[name] = i

            def locate(names: Sequence[str], what: str) -> list[int]:
                missing = [n for n in names if n not in position]
                if missing:
                    raise DataFormatError(f"{what} column(s) {missing} not in the header; columns are {header}",
                                          path=path, line=reader.line_num)
                return [position[n] for n in names]

            label_pos = locate(label_columns, "label")
            if feature_columns is None:
                feature_pos = [i for i in range(len(header)) if i not in set(label_pos)]
            else:
                feature_pos = locate(list(feature_columns), "feature")
                overlap = set(feature_pos) & set(label_pos)
                if overlap:
                    raise ValueError(f"columns {[header[i] for i in sorted(overlap)]} are both labels and features")
            for row in reader:
                line_no = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataFormatError(f"expected {len(header)} fields (as in the header), found {len(row)}",
                                          path=path, line=line_no)
                labels = []
                for i in label_pos:
                    cell = row[i].strip()
                    if cell not in ("0", "1"):
                        raise DataFormatError(f"label value {cell!r} is not 0 or 1", path=path, line=line_no,
                                              field=header[i])
                    labels.append(int(cell))
                features = []
                for i in feature_pos:
                    cell = row[i].strip()
                    try:
                        value = float(cell)
                    except ValueError:
                        raise DataFormatError(f"{cell!r} is not a number", path=path, line=line_no,
                                              field=header[i]) from None
                    if not math.isfinite(value):
                        raise DataFormatError(f"{cell!r} is not a finite number (NaN and infinity are not allowed)",
                                              path=path, line=line_no, field=header[i])
                    features.append(value)
                Y_rows.append(labels)
                X_rows.append(features)
        except UnicodeDecodeError:
            raise DataFormatError("invalid UTF-8", path=path, line=reader.line_num + 1) from None
        except csv.Error as err:
            raise DataFormatError(f"malformed CSV: {err}", path=path, line=reader.line_num) from None
        except _GZIP_ERRORS as err:
            raise DataFormatError(f"corrupt gzip data: {err}", path=path, line=reader.line_num + 1) from None
    if not Y_rows:
        raise DataFormatError("no data rows after the header", path=path)
    return TabularData(X=np.asarray(X_rows, dtype=np.float64).reshape(len(X_rows), len(feature_pos)),
                       Y=np.asarray(Y_rows, dtype=np.int64), feature_names=[header[i] for i in feature_pos],
                       label_names=[header[i] for i in label_pos])
