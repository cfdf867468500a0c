"""What every tabular reader returns: :class:`TabularData` (features, 0/1 labels and their names)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["TabularData", "PathLike"]

PathLike = str | os.PathLike


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
