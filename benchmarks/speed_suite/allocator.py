"""Allocator A/B: glibc malloc's default settings against the package's own (seq2labels.training.allocator
raises the mmap/trim thresholds), the same training and batch-256 prediction phases under each."""

from __future__ import annotations

from .harness import run_phase
from .training import package_variants

# Each setting's environment for its phase processes. seq2labels.training.allocator raises glibc's mmap and
# trim thresholds itself (recipe.train, LabelGenerator.decode_encoded) so freed tensors stay in the
# process for reuse; SEQ2LABELS_MALLOC=default leaves glibc's settings alone.
ALLOCATOR_SETTINGS = {"glibc default": {"SEQ2LABELS_MALLOC": "default"},
                      "package default (seq2labels.training.allocator raises the thresholds)": {}}


def measure_allocator(train: dict, predict: dict, threads: int) -> dict:
    """Training (package encoder, bucketed, fp32) and batch-256 prediction, each in its own process,
    under every setting of ``ALLOCATOR_SETTINGS``, back to back."""
    variant = package_variants()[0]
    return {"settings": [
        {"name": name, "env": env,
         "training": run_phase({**train, "threads": threads, "variants": [variant], "env": env}),
         "prediction": run_phase({**predict, "threads": threads, "batch_sizes": [256], "env": env})}
        for name, env in ALLOCATOR_SETTINGS.items()]}
