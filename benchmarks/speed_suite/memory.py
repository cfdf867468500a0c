"""Peak memory: every phase runs in its own process (``run_phase`` records its max RSS); these are the
phases that measure nothing else: the baseline process (imports and the model only) and the package
encoder's training alone, one process per precision."""

from __future__ import annotations

from .harness import run_phase
from .training import package_variants


def measure_baseline(spec: dict) -> dict:
    """Phase "baseline": imports torch and seq2labels and loads the model, so its peak RSS is what every
    other phase's includes."""
    import torch  # noqa: F401

    from seq2labels.pipeline.generator import load_model
    load_model(spec["model"])
    return {"note": "imports torch and seq2labels, loads the model; nothing else"}


def training_memory(train: dict, threads: int) -> dict[str, dict]:
    """The package encoder (bucketed, one run) in its own process per precision: {precision: phase}."""
    return {v[2]: run_phase({**train, "threads": threads, "variants": [v], "repeats": 1})
            for v in package_variants()}
