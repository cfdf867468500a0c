"""The small real data set the package ships for its demo (a GoEmotions subset, CC BY 4.0)."""

from __future__ import annotations

from importlib import resources


def sample_path(name: str) -> str:
    """Path of a file in ``seq2labels/samples`` (e.g. ``goemotions_train.jsonl.gz``, ``demo.yaml``)."""
    return str(resources.files("seq2labels") / "samples" / name)
