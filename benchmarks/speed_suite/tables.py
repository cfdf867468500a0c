"""Formatting and row look-ups shared by the report's sections (report.py, targets.py); no torch."""

from __future__ import annotations


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_runs(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def error_row(phase: dict, columns: int) -> str:
    return f"| failed: {phase['error']} |" + " |" * (columns - 1)


def ratio(a, b, digits: int = 2) -> str:
    return fmt(a / b, digits) if a is not None and b else "-"


def precision_of(row: dict) -> str:
    """A row's precision; rows of result files written before precisions were measured are fp32."""
    return row.get("precision", "fp32")


def yes(met: bool) -> str:
    return "yes" if met else "no"


def prediction_rows(record: dict) -> list[dict]:
    rows = list(record["prediction"].get("rows", []))
    for sweep in record.get("threads_sweep", []):
        rows += sweep["prediction"].get("rows", [])
    return rows


def prediction_row(phase: dict, decoding: str, batch_size: int, precision: str = "fp32") -> dict | None:
    return next((r for r in phase.get("rows", [])
                 if (r["decoding"], r["batch_size"], precision_of(r)) == (decoding, batch_size, precision)), None)


def training_row(phase: dict, encoder: str, order: str, precision: str = "fp32") -> dict | None:
    return next((r for r in phase.get("rows", [])
                 if (r["encoder"], r["order"], precision_of(r)) == (encoder, order, precision)), None)


def measured_time_to_best(record: dict) -> list[dict]:
    """This run's time-to-best runs, one per precision; older result files hold one (fp32) dict."""
    measured = record["time_to_best"].get("measured")
    if not measured:
        return []
    return [measured] if isinstance(measured, dict) else list(measured)


def memory_phases(record: dict) -> dict[str, dict]:
    """The package encoder's peak-RSS phases by precision; older result files hold one fp32 phase."""
    memory = record.get("training_memory") or {}
    return {"fp32": memory} if "phase" in memory or "error" in memory else memory


def sgm_train_time(record: dict) -> tuple[float | None, str, bool]:
    """SGM seconds to the best validation score: CPU seconds of this run's training when measured
    (fp32 when it was), else the wall seconds recorded by the quality run; (seconds, where, is_cpu)."""
    measured = [m for m in measured_time_to_best(record) if m.get("cpu_seconds_to_best") is not None]
    chosen = next((m for m in measured if precision_of(m) == "fp32"), measured[0] if measured else None)
    if chosen:
        return chosen["cpu_seconds_to_best"], f"CPU seconds, this run, {precision_of(chosen)}", True
    recorded = record["time_to_best"].get("recorded")
    if recorded:
        return recorded["seconds_to_best"], f"wall seconds recorded in `{recorded['source']}`", False
    return None, "not measured", False
