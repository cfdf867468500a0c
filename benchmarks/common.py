"""What every benchmark result file records: command, commit, machine, data set (see seq2labels.utils.provenance)."""

from __future__ import annotations

from pathlib import Path

from seq2labels.utils import provenance as _provenance

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def provenance(data_files: list[Path]) -> dict:
    return _provenance.provenance(data_files, relative_to=SHARED_DATA.parent)
