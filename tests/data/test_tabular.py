"""ARFF and CSV readers: every Mulan set against its README counts, conventions, and every error."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2labels.data.tabular import TabularData, read_arff, read_label_csv, read_mulan_labels
from seq2labels.errors import DataFormatError

DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MULAN = DATA / "mulan"
needs_mulan = pytest.mark.skipif(not MULAN.is_dir(), reason=f"Mulan data sets not found at {MULAN}")
MULAN_SETS = ["emotions", "yeast", "scene", "enron", "birds", "genbase", "cal500", "flags"]


def _table_rows(text: str, first_cell: str) -> list[list[str]]:
    """Rows of Markdown tables whose first cell matches the regex ``first_cell``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if re.fullmatch(first_cell, cells[0]):
                rows.append(cells)
    return rows


# --------------------------------------------------------------------------- the real data


@needs_mulan
@pytest.mark.parametrize("name", MULAN_SETS)
def test_every_mulan_file_matches_its_readme(name):
    folder = MULAN / name
    readme = (folder / "README.md").read_text(encoding="utf-8")
    rows = _table_rows(readme, r"[\w-]+\.arff")
    assert rows, f"no counts table in {folder / 'README.md'}"
    xml_labels = [n for n, _ in read_mulan_labels(folder / f"{name}.xml")]
    for file, instances, features, labels, cardinality, unlabeled, relation in rows:
        data = read_arff(folder / f"{file}.gz")          # labels found through <name>.xml beside it
        assert data.X.shape == (int(instances), int(features)), file
        assert data.Y.shape == (int(instances), int(labels)), file
        assert data.label_names == xml_labels
        assert len(data.feature_names) == int(features)
        assert abs(data.Y.sum(axis=1).mean() - float(cardinality)) <= 1e-3, file
        assert int((data.Y.sum(axis=1) == 0).sum()) == int(unlabeled), file
        assert data.relation.startswith(relation.strip("`")), file
        assert set(np.unique(data.Y)) <= {0, 1}
        sparse_readme = "Sparse ARFF (`{index value, ...}` rows): yes" in readme
        assert sp.issparse(data.X) == sparse_readme
        if not sp.issparse(data.X):
            assert np.isfinite(data.X).all()


@needs_mulan
def test_top_level_table_agrees_with_the_folders():
    # the files themselves are checked against the folder READMEs above; here the summary table
    # must agree with those (the split sizes add up, scene has no combined file)
    table = [r for r in _table_rows((MULAN / "README.md").read_text(encoding="utf-8"), r"[a-z0-9]+")
             if r[0] != "dataset"]
    assert sorted(r[0] for r in table) == sorted(MULAN_SETS)
    for name, instances, features, labels, _card, split in table:
        counts = {row[0]: row[1:4] for row in
                  _table_rows((MULAN / name / "README.md").read_text(encoding="utf-8"), r"[\w-]+\.arff")}
        parts = [f"{name}.arff"] if split == "none" else [f"{name}-train.arff", f"{name}-test.arff"]
        if split != "none":
            assert [counts[p][0] for p in parts] == split.split("/")
            if f"{name}.arff" in counts:
                assert counts[f"{name}.arff"][0] == instances
        assert sum(int(counts[p][0]) for p in parts) == int(instances)
        assert {counts[p][1] for p in parts} == {features} and {counts[p][2] for p in parts} == {labels}
        assert all((MULAN / name / f"{p}.gz").is_file() for p in parts)


@needs_mulan
def test_genbase_nominal_features_as_codes_or_refused():
    path = MULAN / "genbase" / "genbase-test.arff.gz"
    data = read_arff(path)
    assert data.nominal_values["PS00010"] == ("YES", "NO")
    assert set(np.unique(data.X[:, data.feature_names.index("PS00010")])) <= {0.0, 1.0}
    assert len(data.nominal_values) == 1186            # the protein id and 1185 YES/NO motifs
    with pytest.raises(DataFormatError, match="one-hot") as err:
        read_arff(path, nominal="error")
    assert err.value.line is not None and str(path) in str(err.value)


@needs_mulan
def test_birds_escaped_quotes_match_the_xml():
    data = read_arff(MULAN / "birds" / "birds-test.arff.gz")
    assert "Swainson's Thrush" in data.label_names
    assert data.feature_names[-1] == "location"        # nominal {2,10,1,...}: read as the numbers
    assert set(np.unique(data.X[:, -1])) <= {2, 10, 1, 7, 5, 4, 17, 15, 16, 8, 13, 11}


# --------------------------------------------------------------------------- synthetic files

DENSE = """% a comment
@RELATION 'toy'

@attribute f1 numeric
@attribute 'f two' REAL
@attribute color {1, 2, 3}
@attribute lab1 {0,1}
@attribute "lab 2" {0,1}

@data
1.5,2,3,1,0
-1, 0.25, 1, 0, 1
% a comment among the data
?,1e3,2,1,1
"""


def write(tmp_path: Path, name: str, text: str, *, gz: bool = False, crlf: bool = False, bom: bool = False) -> Path:
    raw = text.replace("\n", "\r\n") if crlf else text
    data = (b"\xef\xbb\xbf" if bom else b"") + raw.encode("utf-8")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def check_dense(data: TabularData):
    np.testing.assert_array_equal(data.X, [[1.5, 2, 3], [-1, 0.25, 1], [np.nan, 1000, 2]])
    np.testing.assert_array_equal(data.Y, [[1, 0], [0, 1], [1, 1]])
    assert data.Y.dtype == np.int64 and data.X.dtype == np.float64
    assert data.feature_names == ["f1", "f two", "color"]
    assert data.label_names == ["lab1", "lab 2"]
    assert data.relation == "toy" and data.nominal_values == {}


def test_dense_plain_gzip_crlf_bom(tmp_path):
    check_dense(read_arff(write(tmp_path, "a.arff", DENSE), n_labels=2))
    check_dense(read_arff(write(tmp_path, "b.arff.gz", DENSE, gz=True, crlf=True, bom=True), n_labels=2))


def test_label_names_order_is_kept(tmp_path):
    data = read_arff(write(tmp_path, "a.arff", DENSE), label_names=["lab 2", "lab1"])
    assert data.label_names == ["lab 2", "lab1"]
    np.testing.assert_array_equal(data.Y, [[0, 1], [1, 0], [1, 1]])


def test_meka_relation(tmp_path):
    first = DENSE.replace("@RELATION 'toy'", "@relation 'toy: -C 2 -split 50'")
    first = first.replace("@attribute lab1 {0,1}\n@attribute \"lab 2\" {0,1}\n", "")
    first = first.replace("@attribute f1 numeric", "@attribute lab1 {0,1}\n@attribute \"lab 2\" {0,1}\n"
                                                     "@attribute f1 numeric")
    first = first.replace("1.5,2,3,1,0", "1,0,1.5,2,3").replace("-1, 0.25, 1, 0, 1", "0,1,-1,0.25,1")
    first = first.replace("?,1e3,2,1,1", "1,1,?,1e3,2")
    data = read_arff(write(tmp_path, "first.arff", first))
    check_dense(TabularData(data.X, data.Y, data.feature_names, data.label_names, "toy"))
    last = DENSE.replace("@RELATION 'toy'", "@relation toy:-C -2")           # unquoted works too
    data = read_arff(write(tmp_path, "last.arff", last))
    check_dense(TabularData(data.X, data.Y, data.feature_names, data.label_names, "toy"))


XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab1"></label>
<label name="lab 2"></label>
</labels>
"""


def test_mulan_xml_explicit_beside_and_without_split_suffix(tmp_path):
    xml = write(tmp_path, "labels.xml", XML)
    check_dense(read_arff(write(tmp_path, "a.arff", DENSE), xml=xml))
    write(tmp_path, "toy.xml", XML)
    check_dense(read_arff(write(tmp_path, "toy.arff", DENSE)))
    check_dense(read_arff(write(tmp_path, "toy-train.arff.gz", DENSE, gz=True)))
    check_dense(read_arff(write(tmp_path, "toy_test.arff", DENSE)))


def test_explicit_arguments_win_over_the_xml_beside(tmp_path):
    write(tmp_path, "toy.xml", XML)
    data = read_arff(write(tmp_path, "toy.arff", DENSE.replace("color {1, 2, 3}", "color {0, 1}")
                           .replace(",3,1,0", ",0,1,0").replace(",2,1,1", ",0,1,1")),
                     n_labels=3)
    assert data.label_names == ["color", "lab1", "lab 2"]


SPARSE = """@relation sparse
@attribute a numeric
@attribute b numeric
@attribute c {x, y}
@attribute d {2, 5}
@attribute 'it\\'s' {0,1}
@attribute L2 numeric
@data
{0 1.5, 4 1}
{1 -2, 2 y, 3 5, 5 1}
{ }
{2 'x', 5 1}
"""


def test_sparse_rows_and_nominal_defaults(tmp_path):
    data = read_arff(write(tmp_path, "s.arff", SPARSE), n_labels=2)
    assert sp.issparse(data.X) and data.X.format == "csr"
    # omitted nominal values are the first declared value: c -> x (code 0), d -> 2
    np.testing.assert_array_equal(data.X.toarray(), [[1.5, 0, 0, 2], [0, -2, 1, 5], [0, 0, 0, 2], [0, 0, 0, 2]])
    np.testing.assert_array_equal(data.Y, [[1, 0], [0, 1], [0, 0], [0, 1]])
    assert data.label_names == ["it's", "L2"]
    assert data.nominal_values == {"c": ("x", "y")}


def test_mixed_dense_and_sparse_rows(tmp_path):
    text = SPARSE.replace("{ }\n", "0.5,1,y,5,0,1\n")
    data = read_arff(write(tmp_path, "m.arff", text), n_labels=2)
    np.testing.assert_array_equal(data.X.toarray()[2], [0.5, 1, 1, 5])
    np.testing.assert_array_equal(data.Y[2], [0, 1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.data())
def test_round_trip_dense_and_sparse(tmp_path, n_features, n_labels, n_rows, data):
    values = st.floats(allow_nan=False, allow_infinity=False, width=64)
    X = np.array([[data.draw(values) for _ in range(n_features)] for _ in range(n_rows)])
    Y = np.array([[data.draw(st.integers(0, 1)) for _ in range(n_labels)] for _ in range(n_rows)])
    header = "@relation r\n" + "".join(f"@attribute x{i} numeric\n" for i in range(n_features))
    header += "".join(f"@attribute y{j} {{0,1}}\n" for j in range(n_labels)) + "@data\n"
    dense = header + "".join(",".join([*(repr(float(v)) for v in x), *map(str, y)]) + "\n" for x, y in zip(X, Y))
    back = read_arff(write(tmp_path, "d.arff", dense), n_labels=n_labels)
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.Y, Y)
    rows = []
    for x, y in zip(X, Y):
        row = [*(repr(float(v)) for v in x), *map(str, y)]
        rows.append("{" + ", ".join(f"{i} {v}" for i, v in enumerate(row) if float(v) != 0) + "}")
    back = read_arff(write(tmp_path, "s.arff", header + "\n".join(rows) + "\n"), n_labels=n_labels)
    np.testing.assert_array_equal(back.X.toarray(), X)
    np.testing.assert_array_equal(back.Y, Y)


# --------------------------------------------------------------------------- ARFF errors


def arff_error(tmp_path, text: str, match: str, line: int | None, name: str = "bad.arff", **kwargs):
    path = write(tmp_path, name, text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_arff(path, **kwargs)
    assert err.value.path == str(path)
    assert err.value.line == line
    if line is not None:
        assert f"{path}:{line}: " in str(err.value)
    return err.value


def test_error_wrong_number_of_values(tmp_path):
    arff_error(tmp_path, DENSE.replace("-1, 0.25, 1, 0, 1", "-1, 0.25, 1, 0"), "expected 5 values.*found 4", 12,
               n_labels=2)
    arff_error(tmp_path, DENSE.replace("1.5,2,3,1,0", "1.5,2,3,1,0,1"), "expected 5 values.*found 6", 11,
               n_labels=2)


def test_error_non_numeric_value(tmp_path):
    arff_error(tmp_path, DENSE.replace("?,1e3", "?,abc"), "numeric attribute 'f two': 'abc' is not", 14,
               n_labels=2)
    arff_error(tmp_path, DENSE.replace("?,1e3", "?,inf"), "'inf' is not a finite number", 14, n_labels=2)
    arff_error(tmp_path, DENSE.replace("1e3,2,1,1", "1e3,7,1,1"), "'color': '7' is not one of its declared", 14,
               n_labels=2)
    arff_error(tmp_path, SPARSE.replace("{1 -2,", "{1 minus,"), "'b': 'minus' is not", 10, n_labels=2)


def test_error_label_value_not_01(tmp_path):
    arff_error(tmp_path, DENSE.replace("-1, 0.25, 1, 0, 1", "-1, 0.25, 1, 0, 2"), "'lab 2'.*'2' is not 0 or 1", 12,
               n_labels=2)
    arff_error(tmp_path, DENSE.replace("?,1e3,2,1,1", "?,1e3,2,?,1"), "'lab1'.*missing value", 14, n_labels=2)
    arff_error(tmp_path, SPARSE.replace("5 1}", "5 0.5}"), "'L2'.*'0.5' is not 0 or 1", 10, n_labels=2)
    arff_error(tmp_path, SPARSE.replace("{0 1.5, 4 1}", "{0 1.5, 4 ?}"), "missing value", 9, n_labels=2)


def test_error_label_attribute_not_binary(tmp_path):
    arff_error(tmp_path, DENSE, "label attribute 'color' must be numeric or nominal", 6, n_labels=3)


def test_error_missing_data_section(tmp_path):
    header = DENSE.split("@data")[0]
    arff_error(tmp_path, header, "no @data section", header.count("\n"), n_labels=2)
    arff_error(tmp_path, "1,2,3\n", "expected @relation", 1)
    arff_error(tmp_path, "", "no @attribute and no @data", None)


def test_error_unknown_or_unsupported_attribute_type(tmp_path):
    arff_error(tmp_path, DENSE.replace("REAL", "floating"), "unknown attribute type 'floating'", 5, n_labels=2)
    arff_error(tmp_path, DENSE.replace("REAL", "string"), "type 'string' is not supported", 5, n_labels=2)
    arff_error(tmp_path, DENSE.replace("'f two' REAL", "'f two'"), "has no type", 5, n_labels=2)
    arff_error(tmp_path, DENSE.replace("{1, 2, 3}", "{1, 2, 3"), "missing closing", 6, n_labels=2)


def test_error_xml_label_not_an_attribute(tmp_path):
    xml = write(tmp_path, "labels.xml", XML.replace('"lab 2"', '"lab two"'))
    with pytest.raises(DataFormatError, match="'lab two' is not an attribute") as err:
        read_arff(write(tmp_path, "a.arff", DENSE), xml=xml)
    assert err.value.path == str(xml) and err.value.line == 4
    with pytest.raises(DataFormatError, match="malformed XML") as err:
        read_arff(write(tmp_path, "a.arff", DENSE), xml=write(tmp_path, "broken.xml", XML.replace("</labels>", "")))
    assert err.value.line is not None


def test_error_more_labels_than_attributes(tmp_path):
    arff_error(tmp_path, DENSE, "n_labels=6 is larger than the attribute count \\(5\\)", None, n_labels=6)
    arff_error(tmp_path, DENSE.replace("@RELATION 'toy'", "@relation 'toy: -C 9'"), "MEKA -C 9", 2)
    many = XML.replace("</labels>", "".join(f'<label name="l{i}"/>' for i in range(5)) + "</labels>")
    arff_error(tmp_path, DENSE, "7 labels is more than the attribute count", None,
               xml=write(tmp_path, "many.xml", many))


def test_error_cannot_tell_the_labels(tmp_path):
    arff_error(tmp_path, DENSE, "cannot tell which attributes are labels", None)


def test_error_sparse_rows(tmp_path):
    arff_error(tmp_path, SPARSE.replace("{0 1.5, 4 1}", "{0 1.5, 9 1}"), "index 9 is out of range", 9, n_labels=2)
    arff_error(tmp_path, SPARSE.replace("{0 1.5, 4 1}", "{0 1.5, 0 1}"), "index 0 appears twice", 9, n_labels=2)
    arff_error(tmp_path, SPARSE.replace("{0 1.5, 4 1}", "{0 1.5, 4}"), "is not 'index value'", 9, n_labels=2)
    arff_error(tmp_path, SPARSE.replace("{0 1.5, 4 1}", "{0 1.5, 4 1}, {2}"), "instance weights", 9, n_labels=2)


def test_error_header_problems(tmp_path):
    arff_error(tmp_path, DENSE.replace("@attribute color", "@attribute f1"), "'f1' is declared twice", 6,
               n_labels=2)
    arff_error(tmp_path, DENSE.replace("@attribute color", "@attrib color"), "unknown header keyword", 6,
               n_labels=2)
    arff_error(tmp_path, DENSE.replace("'f two'", "'f two"), "unterminated ' quote", 5, n_labels=2)
    arff_error(tmp_path, "@relation r\n@data\n", "@data before any @attribute", 2)


def test_error_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.arff"
    path.write_bytes(DENSE.replace("'f two'", "'f\xe9'").encode("latin-1"))
    with pytest.raises(DataFormatError, match="invalid UTF-8") as err:
        read_arff(path, n_labels=2)
    assert err.value.line == 5
    assert read_arff(path, n_labels=2, encoding_errors="replace").feature_names[1] == "f\ufffd"


def test_bad_arguments(tmp_path):
    path = write(tmp_path, "a.arff", DENSE)
    with pytest.raises(ValueError, match="not both"):
        read_arff(path, label_names=["lab1"], xml=path)
    with pytest.raises(ValueError, match="n_labels"):
        read_arff(path, n_labels=0)
    with pytest.raises(ValueError, match="nominal"):
        read_arff(path, n_labels=2, nominal="onehot")
    with pytest.raises(DataFormatError, match="file not found"):
        read_arff(tmp_path / "missing.arff", n_labels=1)


# --------------------------------------------------------------------------- CSV

CSV = """id,f1,f2,lab_a,lab_b
1,0.5,2,1,0
2,"1.5",-1,0,1

3,1e-3,0,1,1
"""


def test_csv_read(tmp_path):
    for kw in ({}, {"gz": True, "crlf": True, "bom": True}):
        data = read_label_csv(write(tmp_path, "t.csv" + (".gz" if kw else ""), CSV, **kw), ["lab_a", "lab_b"],
                              ["f1", "f2"])
        np.testing.assert_array_equal(data.X, [[0.5, 2], [1.5, -1], [0.001, 0]])
        np.testing.assert_array_equal(data.Y, [[1, 0], [0, 1], [1, 1]])
        assert data.feature_names == ["f1", "f2"] and data.label_names == ["lab_a", "lab_b"]
        assert data.Y.dtype == np.int64
    every = read_label_csv(write(tmp_path, "t.csv", CSV), ["lab_b"])
    assert every.feature_names == ["id", "f1", "f2", "lab_a"] and every.Y.shape == (3, 1)


@pytest.mark.parametrize("old, new, line, column, match", [
    ("2,\"1.5\"", "2,nan", 3, "f1", "not a finite number"),
    ("-1,0,1", "-inf,0,1", 3, "f2", "not a finite number"),
    ("1e-3", "1e-3x", 5, "f1", "is not a number"),
    ("1e-3", "", 5, "f1", "is not a number"),
    ("0.5,2,1,0", "0.5,2,2,0", 2, "lab_a", "label value '2' is not 0 or 1"),
    ("0,1,1\n", "0,1,yes\n", 5, "lab_b", "label value 'yes'"),
])
def test_csv_bad_values_name_line_and_column(tmp_path, old, new, line, column, match):
    path = write(tmp_path, "bad.csv", CSV.replace(old, new))
    with pytest.raises(DataFormatError, match=match) as err:
        read_label_csv(path, ["lab_a", "lab_b"], ["f1", "f2"])
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, column)
    assert f"{path}:{line}: field {column!r}" in str(err.value)


def test_csv_structure_errors(tmp_path):
    path = write(tmp_path, "short.csv", CSV.replace("2,\"1.5\",-1,0,1", "2,1.5,-1,0"))
    with pytest.raises(DataFormatError, match="expected 5 fields.*found 4") as err:
        read_label_csv(path, ["lab_a"])
    assert err.value.line == 3
    with pytest.raises(DataFormatError, match="label column\\(s\\) \\['lab_c'\\] not in the header") as err:
        read_label_csv(write(tmp_path, "t.csv", CSV), ["lab_c"])
    assert err.value.line == 1
    with pytest.raises(DataFormatError, match="feature column"):
        read_label_csv(write(tmp_path, "t.csv", CSV), ["lab_a"], ["f3"])
    with pytest.raises(DataFormatError, match="empty file"):
        read_label_csv(write(tmp_path, "e.csv", ""), ["lab_a"])
    with pytest.raises(DataFormatError, match="no data rows"):
        read_label_csv(write(tmp_path, "h.csv", "f1,lab_a\n"), ["lab_a"])
    with pytest.raises(DataFormatError, match="appears twice"):
        read_label_csv(write(tmp_path, "d.csv", "f1,f1,lab_a\n1,2,1\n"), ["lab_a"])
    with pytest.raises(ValueError, match="both labels and features"):
        read_label_csv(write(tmp_path, "t.csv", CSV), ["lab_a"], ["lab_a", "f1"])
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"f1,lab_a\n1,1\n\xe9,0\n")
    with pytest.raises(DataFormatError, match="invalid UTF-8") as err:
        read_label_csv(bad, ["lab_a"])
