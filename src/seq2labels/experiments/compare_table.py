"""The comparison table: rows of metrics per data set and method, written as Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2labels.experiments.compare_spec import COLUMNS, METRIC_KEYS

# --------------------------------------------------------------------------- table


@dataclass
class ComparisonTable:
    """Rows of ``{dataset, method, source, protocol, <METRIC_KEYS>}`` (+ ``*_std`` for CV)."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def _fmt(self, key: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if key == "predict_docs_per_s":
            return f"{value:.0f}"
        if key == "fit_seconds":
            return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        return f"{value:.4f}"

    def to_markdown(self) -> str:
        lines = [f"# Comparison: {self.name}", ""]
        head = ["data set", "method", *[h for _, h in COLUMNS], "protocol", "source"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * len(COLUMNS) + "---|---|"]
        for r in self.rows:
            cells = [r["dataset"], r["method"]]
            for k, _ in COLUMNS:
                cell = self._fmt(k, r.get(k))
                std = r.get(k + "_std")
                if cell and std is not None and k not in ("fit_seconds", "predict_docs_per_s"):
                    cell += f" ± {std:.4f}"
                cells.append(cell)
            cells += [r.get("protocol", ""), r.get("source", "")]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += ["", "(-) lower is better, (+) higher is better. Rows with a source file are read from "
                  "that result file, not re-run.", ""]
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        keys = ["dataset", "method", *METRIC_KEYS, *(k + "_std" for k in METRIC_KEYS), "protocol", "source"]
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: r.get(k, "") for k in keys})
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"name": self.name, "columns": dict(COLUMNS), "rows": self.rows, "config": self.config,
                "provenance": self.provenance}

    def write(self, folder: str | Path, stem: str) -> dict[str, Path]:
        """Write ``stem.md``, ``stem.csv`` and ``stem.json`` into ``folder``; return their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"md": folder / f"{stem}.md", "csv": folder / f"{stem}.csv", "json": folder / f"{stem}.json"}
        paths["md"].write_text(self.to_markdown(), encoding="utf-8")
        paths["csv"].write_text(self.to_csv(), encoding="utf-8")
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1, default=_json_default) + "\n",
                                 encoding="utf-8")
        return paths


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)
