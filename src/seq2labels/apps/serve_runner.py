"""The service's model side: its settings, the optional-dependency check, and the runner that
calls the model in one worker thread with a deadline per request (no HTTP here)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence

from seq2labels.errors import ConfigError, Seq2LabelsError

MAX_BEAM_SIZE = 32       # a request may ask for beams up to this size


class MissingDependencyError(Seq2LabelsError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def _import_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401  (checked here so the error names both)
    except ImportError as exc:
        raise MissingDependencyError(
            f"seq2labels serve needs fastapi and uvicorn ({exc.name} is missing): "
            "pip install 'seq2labels[serve]'") from None


@dataclass(frozen=True)
class ServeSettings:
    """Limits and defaults of one service; every limit is checked before any inference."""

    max_texts: int = 64              # texts per request
    max_chars: int = 20_000          # characters per text
    max_body_bytes: int = 1_000_000  # request body, counted as it streams in (Content-Length is not trusted)
    timeout: float = 10.0            # seconds a request may wait for and spend in inference -> 503
    beam_size: Optional[int] = None  # default beam for requests; None: the model's decode.beam_size
    batch_size: int = 64             # texts decoded together
    model_name: str = "model"        # shown by /health

    def __post_init__(self):
        for name in ("max_texts", "max_chars", "max_body_bytes", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{_flag(name)} must be a positive integer, got {value!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) \
                or not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ConfigError(f"{_flag('timeout')} must be a positive number of seconds, got {self.timeout!r}")
        if self.beam_size is not None and not (isinstance(self.beam_size, int)
                                               and 1 <= self.beam_size <= MAX_BEAM_SIZE):
            raise ConfigError(f"{_flag('beam_size')} must be in 1..{MAX_BEAM_SIZE}, got {self.beam_size!r}")


_MODEL_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def _model_lock(generator) -> threading.Lock:
    """One lock per generator object: torch modules are not safe for concurrent calls here."""
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(generator, threading.Lock())


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class InferenceTimeout(Exception):
    """A request did not get its predictions within ServeSettings.timeout."""


class InferenceRunner:
    """Runs predictions in one worker thread, one at a time, each with a deadline.

    A single-thread executor is a queue: a request that times out while still queued is
    cancelled and never runs. One that times out mid-inference runs to its end (a torch call
    cannot be interrupted) and its result is dropped. The lock belongs to the model, not the
    runner, so apps sharing one generator in a process still call it one at a time.
    """

    def __init__(self, generator, batch_size: int):
        self.generator = generator
        self.batch_size = batch_size
        self._lock = _model_lock(generator)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="seq2labels-infer")

    async def predict(self, texts: Sequence[str], *, beam_size: int, max_labels: Optional[int],
                      min_labels: Optional[int] = None, timeout: float) -> list:
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        future = loop.run_in_executor(self._executor, self._predict_locked, abandoned, list(texts),
                                      beam_size, max_labels, min_labels)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            abandoned.set()
            raise InferenceTimeout(f"inference did not finish within the {timeout:g} s timeout") from None

    def _predict_locked(self, abandoned: threading.Event, texts: list[str], beam_size: int,
                        max_labels: Optional[int], min_labels: Optional[int]) -> Optional[list]:
        with self._lock:
            if abandoned.is_set():  # the client already got its 503
                return None
            return self.generator.predict(texts, beam_size=beam_size, max_labels=max_labels,
                                          min_labels=min_labels, batch_size=self.batch_size)

    async def predict_examples(self, examples: Sequence, *, beam_size: int, max_labels: Optional[int],
                               timeout: float) -> list:
        """Like :meth:`predict` for examples with images / features (an image or fused model)."""
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()

        def run():
            with self._lock:
                if abandoned.is_set():
                    return None
                return self.generator.predict_examples(list(examples), beam_size=beam_size, max_labels=max_labels,
                                                       batch_size=self.batch_size)

        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, run), timeout)
        except asyncio.TimeoutError:
            abandoned.set()
            raise InferenceTimeout(f"inference did not finish within the {timeout:g} s timeout") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
