"""Which ARFF attributes are labels: ``label_names``, a Mulan label XML (given or beside the file),
``n_labels`` or a MEKA ``@relation`` with ``-C``; see :mod:`seq2labels.data.tabular.arff` for the order."""

from __future__ import annotations

import re
from pathlib import Path
from xml.parsers import expat

from seq2labels.data.readers import open_binary
from seq2labels.data.tabular.arff_syntax import _Header
from seq2labels.data.tabular.common import PathLike
from seq2labels.errors import DataFormatError

__all__ = ["read_mulan_labels"]

_MEKA_C = re.compile(r"(?:^|[\s:'\"])-C\s+(-?\d+)")
_SPLIT_SUFFIX = re.compile(r"[-_](train|test)$", re.IGNORECASE)


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
