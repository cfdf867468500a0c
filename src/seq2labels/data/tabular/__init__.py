"""Tabular multi-label data: arff (read_arff, with arff_syntax and arff_labels: read_mulan_labels), csv_reader
(read_label_csv) and common (TabularData). May import data.readers, errors and utils only."""

from __future__ import annotations

from seq2labels.data.tabular.arff import read_arff
from seq2labels.data.tabular.arff_labels import read_mulan_labels
from seq2labels.data.tabular.common import PathLike, TabularData  # noqa: F401 (PathLike: public)
from seq2labels.data.tabular.csv_reader import read_label_csv

__all__ = ["TabularData", "read_arff", "read_label_csv", "read_mulan_labels"]
