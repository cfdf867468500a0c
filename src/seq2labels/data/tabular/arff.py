"""Read multi-label ARFF files (Mulan and MEKA conventions), dense or sparse, plain or gzip.

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

import math
import re
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from seq2labels.data.readers import decode_line, iter_lines
from seq2labels.data.tabular.arff_labels import _label_indices
from seq2labels.data.tabular.arff_syntax import (
    _Attribute,
    _Header,
    _as_number,
    _keyword,
    _parse_attribute,
    _read_quoted,
    _split_values,
    _take_name,
)
from seq2labels.data.tabular.common import PathLike, TabularData
from seq2labels.errors import DataFormatError

__all__ = ["read_arff"]

_WEIGHTED_ROW = re.compile(r"\}\s*,\s*\{[^{}]*\}$")


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
