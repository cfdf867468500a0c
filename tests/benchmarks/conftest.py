"""Benchmark scripts are not a package: their tests get them as fixtures, loaded from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load_script(filename: str, module_name: str):
    """Import benchmarks/<filename> as ``module_name``; yields it and removes it from sys.modules after."""
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        sys.modules.pop(module_name, None)


@pytest.fixture(scope="module")
def speed():
    """benchmarks/speed.py"""
    yield from _load_script("speed.py", "speed_benchmark")


@pytest.fixture(scope="module")
def pq():
    """benchmarks/precision_quality.py"""
    yield from _load_script("precision_quality.py", "precision_quality_benchmark")
