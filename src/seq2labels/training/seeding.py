"""Seeding and random-state snapshots.

Reproducible training needs every random source seeded at the start, and a resumed
run must continue from exactly the random state the interrupted run had, or dropout
masks (and anything else drawing random numbers) diverge from the uninterrupted run.
The snapshot is made only of tensors, lists, tuples, dicts, ints, floats and strings
so that it can live inside a checkpoint loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["capture_rng_state", "restore_rng_state", "seed_everything"]

_MAX_NUMPY_SEED = 2**32 - 1


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_NUMPY_SEED:
        raise ValueError(f"seed must be an int in [0, 2**32 - 1], got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    logger.debug("seeded python, numpy and torch with %d", seed)


def _capture_python() -> dict[str, Any]:
    """Python's state is ``(version, tuple_of_625_ints, gauss_next)``; keep it as plain data."""
    version, internal, gauss_next = random.getstate()
    return {"version": version, "internal": list(internal), "gauss_next": gauss_next}


def _restore_python(state: dict[str, Any]) -> None:
    random.setstate((state["version"], tuple(int(x) for x in state["internal"]), state["gauss_next"]))


def _capture_numpy() -> dict[str, Any]:
    """NumPy's legacy state holds a uint32 array; store it as an int64 tensor (lossless)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _restore_numpy(state: dict[str, Any]) -> None:
    keys = np.asarray(state["keys"].cpu().numpy(), dtype=np.uint32)
    np.random.set_state(
        (state["kind"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["cached_gaussian"]))
    )


def _capture_cuda() -> list[torch.Tensor] | None:
    """One byte tensor per visible GPU, or ``None`` on machines without CUDA."""
    if not torch.cuda.is_available():
        return None
    return [state.cpu() for state in torch.cuda.get_rng_state_all()]


def _restore_cuda(states: list[torch.Tensor] | None) -> None:
    """Restore GPU generators when the device count still matches; warn otherwise."""
    if states is None:
        return
    if not torch.cuda.is_available():
        logger.warning("checkpoint holds CUDA random state but CUDA is not available; ignoring it")
        return
    if len(states) != torch.cuda.device_count():
        logger.warning(
            "checkpoint holds CUDA random state for %d devices but %d are visible; not restoring it",
            len(states), torch.cuda.device_count(),
        )
        return
    torch.cuda.set_rng_state_all([state.cpu() for state in states])


def capture_rng_state() -> dict[str, Any]:
    """Snapshot every global random generator in a ``weights_only``-loadable form."""
    return {
        "python": _capture_python(),
        "numpy": _capture_numpy(),
        "torch": torch.get_rng_state().clone(),
        "cuda": _capture_cuda(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every global random generator back where :func:`capture_rng_state` found it."""
    _restore_python(state["python"])
    _restore_numpy(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    _restore_cuda(state.get("cuda"))
