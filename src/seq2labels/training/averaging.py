"""An exponential moving average of the weights (``TrainerConfig.ema_decay``), evaluated and kept
in place of the raw weights.

Why: on small data sets the validation score of the raw weights jumps by a point or more from
epoch to epoch (Reuters-21578: 0.874, 0.862, 0.880, 0.873 in four epochs), so early stopping
keeps whichever epoch happened to land high, and the test score inherits the noise. The average
of the recent weights is a smoother, usually better model (Polyak averaging), and it costs one
copy of the weights.

The average itself is PyTorch's :class:`torch.optim.swa_utils.AveragedModel` with its EMA
update (``get_ema_multi_avg_fn``), buffers included; the first update copies the weights. This
module adds what the loop needs around it: swapping the average into the model for
evaluation (and for keeping the best weights) and back again, since training goes on from the
raw weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The EMA of ``model``'s parameters and buffers: ``avg <- decay * avg + (1 - decay) * w``
    after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self._average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def updates(self) -> int:
        """Optimizer steps averaged so far."""
        return int(self._average.n_averaged)

    def update(self, model: nn.Module) -> None:
        self._average.update_parameters(model)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """``model`` holds the averaged weights inside the block and its own weights again after it.
        Before any update there is nothing to average and the model stays as it is."""
        if self.updates == 0:
            yield
            return
        raw = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self._average.module.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(raw)

    def state_dict(self) -> dict[str, Any]:
        """For the resume checkpoint (tensors only: it loads with ``weights_only=True``)."""
        return {"decay": self.decay, "average": self._average.state_dict()}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        self._average.load_state_dict(saved["average"])
