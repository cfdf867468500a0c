"""Multi-digit canvases from scikit-learn's load_digits (1,797 real 8x8 handwritten digits).

A canvas is a ``grid`` x ``grid`` board of 8x8 cells (32x32 pixels for grid 4); it holds 1 to 4
*distinct* digits, each a real digit image put in its own random cell; its labels are the digit
set ("d0".."d9"). The digit images are split first (seeded, stratified by digit) into a train
pool and a test pool, so no test canvas holds a digit image any train canvas holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

CELL = 8


@dataclass
class Canvases:
    images: np.ndarray          # (n, side, side) uint8
    labels: list[list[str]]     # the digits on each canvas, as "d<k>"
    cells: list[dict[str, int]]  # label -> the cell index (row * grid + col) it was put in


def digit_pools(seed: int, test_fraction: float = 0.3):
    """(train images, train digits), (test images, test digits): disjoint, stratified by digit."""
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)   # (1797, 8, 8)
    tr, te = train_test_split(np.arange(len(images)), test_size=test_fraction, random_state=seed,
                              stratify=digits.target)
    return (images[tr], digits.target[tr]), (images[te], digits.target[te])


def make_canvases(pool, n: int, seed: int, grid: int = 4, max_digits: int = 4) -> Canvases:
    """``n`` canvases from one pool; each has 1..max_digits distinct digits in distinct random cells."""
    images, targets = pool
    by_digit = {d: np.flatnonzero(targets == d) for d in range(10)}
    rng = np.random.default_rng(seed)
    side = grid * CELL
    out = np.zeros((n, side, side), np.uint8)
    labels, cells = [], []
    for i in range(n):
        k = int(rng.integers(1, max_digits + 1))
        chosen = rng.choice(10, size=k, replace=False)
        where = rng.choice(grid * grid, size=k, replace=False)
        placed = {}
        for digit, cell in zip(chosen.tolist(), where.tolist()):
            img = images[rng.choice(by_digit[digit])]
            r, c = divmod(cell, grid)
            out[i, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = img
            placed[f"d{digit}"] = cell
        labels.append(sorted(placed))
        cells.append(placed)
    return Canvases(out, labels, cells)


def indicator(labels: list[list[str]], names: list[str]) -> np.ndarray:
    col = {n: j for j, n in enumerate(names)}
    y = np.zeros((len(labels), len(names)), np.int64)
    for i, labs in enumerate(labels):
        for lab in labs:
            if lab in col:
                y[i, col[lab]] = 1
    return y
