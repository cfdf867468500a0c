"""TensorBoard curves of a training run, one point per epoch (``train.tensorboard: true``).

The writer is an observer for :class:`~seq2labels.training.loop.Trainer`'s ``on_epoch_end``:
it receives the same row that goes into ``metrics.csv`` and knows nothing about the model.
``train_loss`` and ``lr`` become ``train/loss`` and ``train/lr``, every evaluation metric
``valid/<name>``. TensorBoard (the ``tensorboard`` extra) is imported only when asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from seq2labels.errors import ConfigError

__all__ = ["TensorBoardCurves", "require_tensorboard", "scalar_tag"]

# Row fields of the training loop itself; every other numeric field is a validation metric.
_TRAIN_TAGS = {"train_loss": "train/loss", "lr": "train/lr", "epoch_seconds": "train/epoch_seconds"}


def require_tensorboard():
    """torch's SummaryWriter, or a ConfigError naming the extra to install (checked before training)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(f"train.tensorboard needs the tensorboard package ({exc}): "
                          "pip install 'seq2labels[tensorboard]'") from None
    return SummaryWriter


def scalar_tag(name: str) -> str:
    """The TensorBoard tag of a metrics-row field."""
    return _TRAIN_TAGS.get(name, f"valid/{name}")


class TensorBoardCurves:
    """Writes each epoch's numeric row fields as scalars at step = epoch.

    The event file is opened at the first row with ``purge_step`` = that epoch, so a resumed
    run (or a fresh run in the same folder) hides points a crashed attempt wrote after its
    last checkpoint instead of drawing two values for one epoch.
    """

    def __init__(self, log_dir: str | Path):
        self._summary_writer = require_tensorboard()
        self.log_dir = Path(log_dir)
        self._writer = None

    def __call__(self, row: Mapping[str, Any]) -> None:
        epoch = int(row["epoch"])
        if self._writer is None:
            self._writer = self._summary_writer(str(self.log_dir), purge_step=epoch)
        for name, value in row.items():
            if name == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self._writer.add_scalar(scalar_tag(name), float(value), epoch)
        self._writer.flush()  # the curves are readable while training runs

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "TensorBoardCurves":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
