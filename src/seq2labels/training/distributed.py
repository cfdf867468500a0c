"""torch.distributed plumbing: data-parallel training and sharded prediction.

``torchrun --nproc-per-node N -m seq2labels train ...`` starts N copies of the command,
each with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in
its environment. :func:`init_from_env` turns those into a process group (NCCL for CUDA,
gloo for CPU); the helpers below are what the training loop and the CLI need from it:
who am I, wait for the others, share a Python object, split an epoch's batches.

Every helper is a no-op for a plain single process (rank 0 of 1), so callers need no
``if distributed`` branches and the single-process path stays exactly what it was.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import nn

from seq2labels.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "all_gather_object", "backend_for", "barrier", "broadcast_object", "cleanup", "init_from_env",
    "is_distributed", "is_main_process", "launched_by_torchrun", "local_device", "mean_across_ranks",
    "rank", "rank_seed", "rng_state_for_rank", "run_on_main", "session", "shard_batches", "world_size",
    "wrap_model",
]

T = TypeVar("T")

ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT = timedelta(minutes=30)
_MAX_SEED = 2**32 - 1


# ------------------------------------------------------------------- setup and teardown

def launched_by_torchrun() -> bool:
    """True when the environment says this is one of several processes (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def backend_for(device: str | torch.device) -> str:
    """NCCL talks GPU to GPU; gloo is the CPU backend."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def local_device(device: str) -> str:
    """This process's device: under torchrun, ``cuda`` or ``cuda:N`` becomes ``cuda:LOCAL_RANK``
    (one GPU per process); CPU and single-process devices are returned unchanged."""
    parsed = torch.device(device)
    if parsed.type != "cuda" or not launched_by_torchrun():
        return device
    return f"cuda:{_env_int('LOCAL_RANK', 0)}"


def init_from_env(device: str = "cpu", *, backend: str | None = None,
                  timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Join the process group torchrun described in the environment; False when not launched by it.

    ``backend`` defaults to :func:`backend_for` the device. Non-main ranks log warnings only,
    so a run prints one set of epoch lines.
    """
    if is_distributed():
        return True
    if not launched_by_torchrun():
        return False
    import torch.distributed as dist

    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} "
                          "not set; start the processes with torchrun")
    here = torch.device(local_device(device))
    backend = backend or backend_for(here)
    if here.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
        torch.cuda.set_device(here)
    if backend == "nccl" and not dist.is_nccl_available():
        raise ConfigError("the NCCL backend is not available in this torch build (needed for CUDA training)")
    dist.init_process_group(backend=backend, timeout=timeout)
    if not is_main_process():
        logging.getLogger("seq2labels").setLevel(logging.WARNING)
    logger.info("joined a %d-process %s group (rank %d, device %s)", world_size(), backend, rank(), here)
    return True


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "cpu", *, backend: str | None = None) -> Iterator[bool]:
    """``with session(device) as distributed:`` joins the group when launched by torchrun and
    always leaves it, also on errors; yields whether this is a multi-process run."""
    joined = init_from_env(device, backend=backend)
    try:
        yield joined
    finally:
        if joined:
            cleanup()


# ---------------------------------------------------------------------------- who am I

def is_distributed() -> bool:
    """A process group with more than one process is up."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 writes files, logs and evaluates; the others only train."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """Seed of this rank's random generators: ``seed`` on rank 0 (so one process is unchanged),
    shifted on the others so dropout masks differ between ranks."""
    return (seed + rank()) % (_MAX_SEED + 1)


# ---------------------------------------------------------------------- communication

def _collective_device() -> torch.device:
    """NCCL moves tensors between GPUs only; gloo works on CPU tensors."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank got here."""
    import torch.distributed as dist

    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (pickled, so keep it small: flags, metrics, paths)."""
    import torch.distributed as dist

    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order."""
    import torch.distributed as dist

    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def mean_across_ranks(value: float) -> float:
    """The mean of a float over all ranks (e.g. each rank's training loss)."""
    import torch.distributed as dist

    if not is_distributed():
        return value
    total = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())  # (1,)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.item() / world_size()


class _MainFailed(RuntimeError):
    """What the other ranks raise when rank 0's share of the work failed."""


def run_on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and hand its result to every rank.

    Used for validation: all ranks then take the same early-stopping and learning-rate
    decisions from the same numbers. When ``fn`` fails on rank 0 the error is broadcast
    too, so the other ranks stop instead of waiting for a result that never comes.
    """
    if not is_distributed():
        return fn()
    payload: tuple[str, Any] = ("pending", None)
    error: BaseException | None = None
    if is_main_process():
        try:
            payload = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the others
            error = exc
            payload = ("error", f"{type(exc).__name__}: {exc}")
    payload = broadcast_object(payload)
    if error is not None:
        raise error
    if payload[0] == "error":
        raise _MainFailed(f"rank 0 failed: {payload[1]}")
    return payload[1]


# ------------------------------------------------------------------------- training

def shard_batches(batches: Sequence[T], rank_: int | None = None, world_size_: int | None = None) -> list[T]:
    """This rank's share of one epoch's batches: ``batches[rank::world]``.

    Every rank must build ``batches`` identically (same seed and epoch), so the shares are
    disjoint. When the count is not a multiple of the world size the list is first padded
    with batches from its start (as ``DistributedSampler`` pads), so every rank runs the
    same number of steps; a rank with one step fewer would leave the others waiting in
    the gradient all-reduce forever.
    """
    r = rank() if rank_ is None else rank_
    world = world_size() if world_size_ is None else world_size_
    if world < 1 or not 0 <= r < world:
        raise ValueError(f"rank {r} is not in a world of {world}")
    items = list(batches)
    if world == 1 or not items:
        return items
    per_rank = math.ceil(len(items) / world)
    padded = [items[i % len(items)] for i in range(per_rank * world)]
    return padded[r::world]


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to call in training steps: DistributedDataParallel over ``model`` in a
    multi-process run (gradients are averaged across ranks in ``backward``), else ``model``.

    The wrapper shares ``model``'s parameters, so the optimizer, clipping, evaluation and
    saving keep working on ``model`` itself. DDP copies rank 0's weights to every rank here.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def rng_state_for_rank(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The random state this rank should resume with.

    A multi-process checkpoint holds one state per rank (``rng_state_by_rank``); resuming
    with the same number of processes restores each rank's own. Otherwise every rank gets
    rank 0's state (the single-process checkpoint's only one), with a warning when that
    loses the per-rank states.
    """
    by_rank = checkpoint.get("rng_state_by_rank")
    if by_rank is not None and len(by_rank) == world_size():
        return by_rank[rank()]
    if by_rank is not None or world_size() > 1:
        logger.warning("checkpoint was written by %d process(es), resuming with %d: random streams "
                       "(dropout) will differ from an uninterrupted run",
                       len(by_rank) if by_rank is not None else 1, world_size())
    return checkpoint["rng_state"]
