"""benchmarks/ensemble_thresholds.py: which model folders make the ensemble, and what its rows are called.
No training here."""

from __future__ import annotations

from pathlib import Path


def test_one_pattern_gives_one_member_per_seed(ensemble_thresholds):
    names, folders = ensemble_thresholds.member_folders(["runs/a-seed{seed}/model"], [0, 2])
    assert names == ["seed 0", "seed 2"]
    assert folders == [Path("runs/a-seed0/model"), Path("runs/a-seed2/model")]


def test_several_patterns_make_a_mixed_ensemble_named_by_pattern(ensemble_thresholds):
    names, folders = ensemble_thresholds.member_folders(["a{seed}", "b{seed}"], [0, 1])
    assert folders == [Path("a0"), Path("a1"), Path("b0"), Path("b1")]
    assert names == ["seed 0 (runs 1)", "seed 1 (runs 1)", "seed 0 (runs 2)", "seed 1 (runs 2)"]
    assert all(n.startswith("seed") for n in names)  # the single-model rows the means are taken over
