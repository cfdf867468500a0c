"""Benchmark scripts are not a package: their tests get them as fixtures, loaded from their files.

benchmarks/speed.py is a thin entry point over benchmarks/speed_suite/ (one module per measurement),
imported as the package ``speed_suite`` with benchmarks/ on ``sys.path``, as speed.py itself does."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
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
def speed_suite():
    """benchmarks/speed_suite/ with every module imported (``speed_suite.switches``, ``speed_suite.report``
    ...); removed from sys.modules after, so each test module gets fresh module state."""
    added = str(BENCHMARKS) not in sys.path
    if added:
        sys.path.insert(0, str(BENCHMARKS))
    package = importlib.import_module("speed_suite")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"speed_suite.{info.name}")
    try:
        yield package
    finally:
        for name in [n for n in sys.modules if n == "speed_suite" or n.startswith("speed_suite.")]:
            sys.modules.pop(name, None)
        if added and str(BENCHMARKS) in sys.path:
            sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def speed(speed_suite):
    """benchmarks/speed.py, the command line; it uses the same ``speed_suite`` modules as the fixture."""
    yield from _load_script("speed.py", "speed_benchmark")


@pytest.fixture(scope="module")
def pq():
    """benchmarks/precision_quality.py"""
    yield from _load_script("precision_quality.py", "precision_quality_benchmark")


@pytest.fixture(scope="module")
def ensemble_thresholds():
    """benchmarks/ensemble_thresholds.py (it imports benchmarks/common.py, so benchmarks/ goes on sys.path)."""
    added = str(BENCHMARKS) not in sys.path
    if added:
        sys.path.insert(0, str(BENCHMARKS))
    try:
        yield from _load_script("ensemble_thresholds.py", "ensemble_thresholds_benchmark")
    finally:
        if added and str(BENCHMARKS) in sys.path:
            sys.path.remove(str(BENCHMARKS))
