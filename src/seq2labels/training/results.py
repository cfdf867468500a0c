"""What a training run reports (TrainResult) and the state it carries from epoch to epoch, which a
checkpoint saves so a resumed run continues where it stopped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    ``best_score`` is NaN and ``best_epoch`` 0 when no epoch produced a usable score.
    ``epochs_run`` counts every finished epoch, including those before a resume;
    ``seconds`` is the wall time of this ``fit`` call only.
    """

    best_epoch: int
    best_score: float
    best_metrics: dict
    history: list[dict]
    stopped_early: bool
    seconds: float
    epochs_run: int


@dataclass
class _RunState:
    """What changes from epoch to epoch and must survive a resume."""

    best_score: float
    epoch: int = 0
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    epochs_since_improvement: int = 0
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def _worst_score(mode: str) -> float:
    """Starting 'best' that any real score beats."""
    return -math.inf if mode == "max" else math.inf
