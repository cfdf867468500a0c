"""Read a multi-label CSV (a header row, 0/1 label columns and numeric feature columns), plain or gzip."""

from __future__ import annotations

import csv
import io
import math
import zlib
from typing import Sequence

import numpy as np

from seq2labels.data.readers import open_binary
from seq2labels.data.tabular.common import PathLike, TabularData
from seq2labels.errors import DataFormatError

__all__ = ["read_label_csv"]

_GZIP_ERRORS = (OSError, EOFError, zlib.error)


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
