"""A toy problem for the generic training loop.

Deliberately not one of the package's models: the loop must work for any module, so it
is tested with a small MLP (with dropout, to exercise random state) on synthetic,
linearly separable data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_FEATURES = 8
N_CLASSES = 3
N_TRAIN = 192
N_VAL = 96
BATCH_SIZE = 32


@dataclass
class ToyProblem:
    """Data plus the three callables a Trainer needs."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    data_seed: int = 1234

    @property
    def steps_per_epoch(self) -> int:
        return -(-N_TRAIN // BATCH_SIZE)

    def build_model(self, seed: int = 0, dropout: float = 0.2) -> nn.Module:
        """Seeded here so that two builds are identical; the loop never builds models."""
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, N_CLASSES))

    def make_batches(self, epoch: int) -> list[tuple[Tensor, Tensor]]:
        """Shuffle from seed + epoch only, as the loop's contract asks."""
        generator = torch.Generator().manual_seed(self.data_seed + epoch)
        order = torch.randperm(N_TRAIN, generator=generator)
        return [(self.x_train[idx], self.y_train[idx]) for idx in order.split(BATCH_SIZE)]

    @staticmethod
    def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        logits = model(self.x_val)
        return {
            "accuracy": (logits.argmax(dim=1) == self.y_val).float().mean().item(),
            "val_loss": F.cross_entropy(logits, self.y_val).item(),
        }

    def trainer_kwargs(self) -> dict:
        return {"loss_fn": self.loss_fn, "evaluate_fn": self.evaluate, "make_batches": self.make_batches,
                "steps_per_epoch": self.steps_per_epoch}


def _separable_data(n: int, generator: torch.Generator, centers: Tensor) -> tuple[Tensor, Tensor]:
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    points = centers[labels] + 0.5 * torch.randn(n, N_FEATURES, generator=generator)
    return points, labels


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and CI machines are often shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def toy() -> ToyProblem:
    return make_toy()


def make_toy() -> ToyProblem:
    """The toy data, also built by the two-rank worker script in its own process."""
    generator = torch.Generator().manual_seed(7)
    centers = 2.0 * torch.randn(N_CLASSES, N_FEATURES, generator=generator)
    x_train, y_train = _separable_data(N_TRAIN, generator, centers)
    x_val, y_val = _separable_data(N_VAL, generator, centers)
    return ToyProblem(x_train, y_train, x_val, y_val)


class ScriptedScores:
    """evaluate_fn returning fixed scores epoch by epoch (``start`` = epochs already done,
    for the second half of a resumed run)."""

    def __init__(self, scores: Sequence[float], start: int = 0, name: str = "score",
                 fail_at_epoch: int | None = None):
        self.scores = list(scores)
        self.epoch = start
        self.name = name
        self.fail_at_epoch = fail_at_epoch

    def __call__(self, model: nn.Module) -> dict[str, float]:
        self.epoch += 1
        if self.epoch == self.fail_at_epoch:
            raise KeyboardInterrupt(f"simulated crash in epoch {self.epoch}")
        return {self.name: self.scores[self.epoch - 1]}


@pytest.fixture
def scripted() -> Callable[..., ScriptedScores]:
    return ScriptedScores


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        yield from csv.DictReader(handle)


@pytest.fixture
def csv_rows() -> Callable[[Path], list[dict[str, str]]]:
    return lambda path: list(read_rows(path))
