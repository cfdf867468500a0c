"""Ablations: train named SGM variants of one base config on one data set and tabulate them.

An ablation is described by a YAML mapping::

    name: reuters21578
    base: sgm_ablation.yaml            # run config the variants start from (relative to this file)
    data: {train: ../shared/data/reuters21578/train.jsonl.gz, test: ../shared/data/reuters21578/test.jsonl.gz}
    decode: [1, 5]                     # beam sizes evaluated on the test set; the table shows the last
    seeds: [0, 1, 2]                   # optional: each variant trains once per seed (train.seed)
    peers: compare_peers.yaml          # optional: a comparison config whose methods run in the same ablation
    variants:
      - {name: full}
      - {name: no self-attention, set: {model.self_attention: false}}
      - {name: alphabetical order, set: {labels.order: alphabetical}}

Each variant is the base config plus its ``set`` overrides (the same ``section.key`` names
as ``--set``). Every finished variant (and seed) writes one JSON result (metrics per beam
size, history, training seconds, resolved config, provenance) and the table is rebuilt
from all results present, so a long ablation can be interrupted, resumed, or split across
processes with ``--only`` / ``--seed``. With ``seeds`` the table shows mean +- sample standard
deviation over the seeds that have a result, and how many they are. ``peers`` puts the best
non-SGM methods in the same table, measured by the same run (``peers.json``, cached like a variant).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text
from seq2labels.pipeline.config import load_config, read_yaml
from seq2labels.errors import ConfigError
from seq2labels.utils.provenance import provenance

log = logging.getLogger(__name__)

TOP_KEYS = {"name", "base", "data", "decode", "variants", "seeds", "peers"}
VARIANT_KEYS = {"name", "set"}
DATA_KEYS = {"train", "valid", "test"}
# (result key, column header) in the order of the comparison tables, then ablation extras.
COLUMNS = (("micro_f1", "micro-F1(+)"), ("macro_f1", "macro-F1(+)"), ("example_f1", "example-F1(+)"),
           ("subset_accuracy", "subset acc.(+)"), ("hamming_loss", "HL(-)"), ("micro_precision", "micro-P(+)"),
           ("micro_recall", "micro-R(+)"), ("label_position_deviation", "LPD(-)"))


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]   # "section.key=value" strings, as --set takes them

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "variant"


@dataclass(frozen=True)
class AblationSpec:
    name: str
    base: Path
    data: dict[str, Path]
    beam_sizes: tuple[int, ...]
    variants: tuple[Variant, ...]
    source: Path
    seeds: tuple[int, ...] | None = None   # None: one run per variant at the base config's seed
    peers: Path | None = None              # a comparison config (seq2labels.experiments.compare)


# ---- reading the spec --------------------------------------------------------------------

def load_spec(path: str | Path) -> AblationSpec:
    return parse_spec(read_yaml(path), Path(path))


def parse_spec(raw: Any, path: Path) -> AblationSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an ablation config must be a mapping")
    _no_unknown(raw, TOP_KEYS, str(path))
    for key in ("base", "data", "variants"):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    data = raw["data"]
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise ConfigError(f"{path}: data: needs 'train' and 'test' files")
    _no_unknown(data, DATA_KEYS, f"{path}: data")
    beams = raw.get("decode", [1, 5])
    if not isinstance(beams, list) or not beams or not all(isinstance(b, int) and b >= 1 for b in beams):
        raise ConfigError(f"{path}: decode: a non-empty list of beam sizes >= 1, got {beams!r}")
    return AblationSpec(
        name=str(raw.get("name", path.stem)), base=_resolve(raw["base"], path, "base"),
        data={k: _resolve(v, path, f"data.{k}") for k, v in data.items()},
        beam_sizes=tuple(beams), variants=_parse_variants(raw["variants"], path), source=path,
        seeds=_parse_seeds(raw.get("seeds"), path),
        peers=_resolve(raw["peers"], path, "peers") if raw.get("peers") is not None else None)


def _parse_seeds(seeds: Any, path: Path) -> tuple[int, ...] | None:
    if seeds is None:
        return None
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise ConfigError(f"{path}: seeds: a non-empty list of distinct integers >= 0, got {seeds!r}")
    return tuple(seeds)


def _parse_variants(items: Any, path: Path) -> tuple[Variant, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: variants: a non-empty list of {{name, set}} mappings")
    variants = []
    for i, item in enumerate(items):
        where = f"{path}: variants[{i}]"
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: a mapping with a 'name'")
        _no_unknown(item, VARIANT_KEYS, where)
        sets = item.get("set") or {}
        if not isinstance(sets, dict):
            raise ConfigError(f"{where}: set: a mapping of section.key: value")
        variants.append(Variant(str(item["name"]), tuple(f"{k}={_yaml_scalar(v)}" for k, v in sets.items())))
    slugs = [v.slug for v in variants]
    duplicated = sorted({s for s in slugs if slugs.count(s) > 1})
    if duplicated:
        raise ConfigError(f"{path}: variants: names must differ (clash: {', '.join(duplicated)})")
    return tuple(variants)


def _yaml_scalar(value: Any) -> str:
    """Render a YAML value back into the text form that ``--set`` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolve(value: Any, spec_path: Path, where: str) -> Path:
    """Paths are looked up from the current directory first, then from the spec's folder."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{spec_path}: {where}: a file path, got {value!r}")
    candidate = Path(value)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return spec_path.parent / candidate


def _no_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(mapping) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(sorted(allowed))}")


# ---- running -----------------------------------------------------------------------------

def variant_config(spec: AblationSpec, variant: Variant, extra: Sequence[str] = (), seed: int | None = None):
    data = [f"data.{k}={v}" for k, v in spec.data.items() if k != "test"]
    seeded = [f"train.seed={seed}"] if seed is not None else []
    return load_config(spec.base, [*data, "train.progress=false", *variant.overrides, *seeded, *extra])


def run_slug(variant: Variant, seed: int | None) -> str:
    """The name of a variant's run folder and result file: ``<slug>`` or ``<slug>-seed<N>``."""
    return variant.slug if seed is None else f"{variant.slug}-seed{seed}"


def run_variant(spec: AblationSpec, variant: Variant, runs_dir: Path, results_dir: Path,
                extra: Sequence[str] = (), seed: int | None = None) -> dict:
    """Train one variant (at one seed), evaluate it on the test file at each beam size, write its result."""
    from seq2labels.data.readers import read_examples
    from seq2labels.pipeline.recipe import train

    cfg = variant_config(spec, variant, extra, seed)
    test = read_examples(spec.data["test"], fmt=cfg.data.format)
    started = time.perf_counter()
    run_dir = runs_dir / run_slug(variant, seed)
    generator, result = train(cfg, run_dir)
    seconds = time.perf_counter() - started
    generator.save(run_dir / "model")    # kept for later decoding: ensembles, thresholds, reports
    test_metrics = {}
    for beam in spec.beam_sizes:
        metrics = generator.evaluate(test, beam_size=beam)
        test_metrics[f"beam{beam}"] = {k: metrics[k] for k, _ in COLUMNS}
    record = {"ablation": spec.name, "variant": variant.name, "overrides": list(variant.overrides), "seed": seed,
              "train_seconds": round(seconds, 1), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
              "valid_score": result.best_score, "test_docs": len(test), "test": test_metrics,
              "config": cfg.to_dict(), "history": result.history,
              **provenance([spec.data[k] for k in sorted(spec.data)])}
    out = result_path(results_dir, spec, variant, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    return record


def result_path(results_dir: Path, spec: AblationSpec, variant: Variant, seed: int | None = None) -> Path:
    return results_dir / f"ablation_{spec.name}" / f"{run_slug(variant, seed)}.json"


def peers_path(results_dir: Path, spec: AblationSpec) -> Path:
    return results_dir / f"ablation_{spec.name}" / "peers.json"


def run_peers(spec: AblationSpec, results_dir: Path) -> None:
    """Run the peers' comparison config once and keep its rows (linear peers are deterministic)."""
    from seq2labels.experiments.compare import run_comparison

    table = run_comparison(read_yaml(spec.peers), config_path=spec.peers, log=log.info)
    out = peers_path(results_dir, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, {"config": spec.peers.as_posix(), "rows": table.rows, **table.provenance})


def run_ablation(spec: AblationSpec, runs_dir: str | Path, results_dir: str | Path, *,
                 only: Sequence[str] = (), force: bool = False, extra: Sequence[str] = (),
                 seeds: Sequence[int] = (), peers: bool = True) -> dict[str, Path]:
    """Run the variants (x seeds) that have no result yet, or those named in ``only`` / ``seeds``;
    run the peers when they have no result; then write the table."""
    runs_dir, results_dir = Path(runs_dir), Path(results_dir)
    chosen = select_variants(spec, only)
    for variant in chosen:
        for seed in select_seeds(spec, seeds):
            if result_path(results_dir, spec, variant, seed).exists() and not force:
                log.info("variant %r seed %s: result exists, skipped (use --force to retrain)", variant.name, seed)
                continue
            log.info("variant %r seed %s: training with %s", variant.name, seed,
                     ", ".join(variant.overrides) or "the base config")
            run_variant(spec, variant, runs_dir, results_dir, extra, seed)
            write_table(spec, results_dir)
    if peers and spec.peers is not None and (force or not peers_path(results_dir, spec).exists()):
        run_peers(spec, results_dir)
    return write_table(spec, results_dir)


def select_seeds(spec: AblationSpec, seeds: Sequence[int]) -> list[int | None]:
    if spec.seeds is None:
        if seeds:
            raise ConfigError(f"{spec.source}: --seed needs a 'seeds' list in the ablation config")
        return [None]
    unknown = [s for s in seeds if s not in spec.seeds]
    if unknown:
        raise ConfigError(f"--seed: {', '.join(map(str, unknown))} not in the config's seeds "
                          f"{list(spec.seeds)}")
    return list(dict.fromkeys(seeds)) if seeds else list(spec.seeds)


def select_variants(spec: AblationSpec, only: Sequence[str]) -> list[Variant]:
    if not only:
        return list(spec.variants)
    by_key = {key: v for v in spec.variants for key in (v.name, v.slug)}
    missing = [name for name in only if name not in by_key]
    if missing:
        raise ConfigError(f"--only: no variant named {', '.join(map(repr, missing))}; "
                          f"variants: {', '.join(v.name for v in spec.variants)}")
    return [by_key[name] for name in dict.fromkeys(only)]


# ---- the table ---------------------------------------------------------------------------

def collect_rows(spec: AblationSpec, results_dir: Path) -> list[dict]:
    """One row per variant with a result (mean over its seeds), in the spec's order, then the peers;
    deltas against the first variant."""
    decode = f"beam{spec.beam_sizes[-1]}"
    rows = []
    for variant in spec.variants:
        paths = [result_path(results_dir, spec, variant, seed) for seed in (spec.seeds or (None,))]
        paths = [p for p in paths if p.exists()]
        if paths:
            records = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
            rows.append(_variant_row(variant, records, decode, [p.name for p in paths]))
    if rows and rows[0]["variant"] == spec.variants[0].name:
        for row in rows:
            row["delta_micro_f1"] = row["micro_f1"] - rows[0]["micro_f1"]
            row["delta_macro_f1"] = row["macro_f1"] - rows[0]["macro_f1"]
    if spec.peers is not None and peers_path(results_dir, spec).exists():
        rows += _peer_rows(json.loads(peers_path(results_dir, spec).read_text(encoding="utf-8")))
    return rows


def _variant_row(variant: Variant, records: list[dict], decode: str, names: list[str]) -> dict:
    row: dict[str, Any] = {"variant": variant.name, "kind": "sgm",
                           "overrides": ", ".join(records[0]["overrides"]) or "(base)",
                           "seeds": [r.get("seed") for r in records], "n_seeds": len(records)}
    for key, _ in COLUMNS:
        values = [r["test"][decode][key] for r in records]
        row[key] = statistics.fmean(values)
        row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    row["train_seconds"] = statistics.fmean(r["train_seconds"] for r in records)
    row["best_epoch"] = "/".join(str(r["best_epoch"]) for r in records)
    row["result"] = ", ".join(names)
    row["cpus"] = sorted({r.get("machine", {}).get("cpu", "unknown") for r in records})
    return row


def cpu_note(rows: list[dict]) -> str | None:
    """A warning when the variants trained on different CPU models: a seed reproduces a run bit for bit
    only on the same CPU kind and torch build (the kernels differ), so such rows differ by more than
    the code does."""
    cpus = sorted({cpu for r in rows if r["kind"] == "sgm" for cpu in r.get("cpus", ())})
    if len(cpus) < 2:
        return None
    per_cpu = "; ".join(f"{cpu}: {', '.join(r['variant'] for r in rows if cpu in r.get('cpus', ()))}"
                        for cpu in cpus)
    return (f"Note: these runs trained on {len(cpus)} CPU models ({per_cpu}). Seeded training is bit-for-bit "
            "reproducible on one CPU kind and torch build, not across them: rows from different CPUs also differ "
            "by the kernels' rounding, which over a full run changes the model about as much as another seed.")


def _peer_rows(peers: dict) -> list[dict]:
    """The comparison's rows in the ablation's columns; a peer has no label order (LPD blank)."""
    rows = []
    for r in peers["rows"]:
        row = {"variant": r["method"], "kind": "peer", "overrides": "(peer: same data, one run)",
               "seeds": [], "n_seeds": 1, "train_seconds": r.get("fit_seconds"), "best_epoch": "",
               "result": "peers.json"}
        for key, _ in COLUMNS:
            row[key], row[key + "_std"] = r.get(key), 0.0
        rows.append(row)
    return rows


def _cell(row: dict, key: str, with_std: bool) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if with_std and row["kind"] == "sgm" and row["n_seeds"] > 1:
        return f"{value:.4f} ± {row[key + '_std']:.4f}"
    return f"{value:.4f}"


def table_markdown(spec: AblationSpec, rows: list[dict]) -> str:
    decode = spec.beam_sizes[-1]
    seeded = spec.seeds is not None
    head = ["variant", "changes", *[h for _, h in COLUMNS], "Δ micro-F1", "Δ macro-F1", "train s", "best epoch",
            *(["seeds"] if seeded else [])]
    seeds_note = (f" Mean ± sample standard deviation over the seeds {list(spec.seeds)} (`train.seed`); "
                  "the seeds column says how many have a result." if seeded else "")
    peers_note = (f" Peers below the variants: the methods of `{spec.peers.as_posix()}`, run by the same "
                  "ablation on the same train/test files." if spec.peers is not None else "")
    lines = [f"# Ablation: {spec.name}", "",
             f"Test split, beam {decode}. Base config `{spec.base.as_posix()}`; each variant changes only the "
             f"keys shown. Δ is against `{spec.variants[0].name}`.{seeds_note}{peers_note} One JSON result "
             f"per run in `ablation_{spec.name}/` (command, commit, machine, data checksums, history).", "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in rows:
        deltas = [f"{r[k]:+.4f}" if k in r else "" for k in ("delta_micro_f1", "delta_macro_f1")]
        seconds = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else ""
        cells = [r["variant"], f"`{r['overrides']}`", *[_cell(r, k, seeded) for k, _ in COLUMNS], *deltas,
                 seconds, str(r["best_epoch"]), *([str(r["n_seeds"]) if r["kind"] == "sgm" else ""] if seeded else [])]
        lines.append("| " + " | ".join(cells) + " |")
    done = {r["variant"] for r in rows if r["kind"] == "sgm"}
    missing = [v.name for v in spec.variants if v.name not in done]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    note = cpu_note(rows)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    keys = ["variant", "kind", "overrides", *[k for k, _ in COLUMNS], *[k + "_std" for k, _ in COLUMNS],
            "delta_micro_f1", "delta_macro_f1", "train_seconds", "best_epoch", "n_seeds", "result"]
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_table(spec: AblationSpec, results_dir: str | Path) -> dict[str, Path]:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = collect_rows(spec, results_dir)
    stem = results_dir / f"ablation_{spec.name}"
    paths = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv"), "json": stem.with_suffix(".json")}
    atomic_write_text(paths["md"], table_markdown(spec, rows))
    atomic_write_text(paths["csv"], table_csv(rows))
    atomic_write_json(paths["json"], {"name": spec.name, "base": spec.base.as_posix(),
                                      "decode": f"beam{spec.beam_sizes[-1]}",
                                      "seeds": list(spec.seeds) if spec.seeds is not None else None,
                                      "peers": spec.peers.as_posix() if spec.peers is not None else None,
                                      "rows": rows})
    return paths


def ablate(config: str | Path, out: str | Path, runs: Path, *, only: Sequence[str] = (), force: bool = False,
           extra: Sequence[str] = (), table_only: bool = False, seeds: Sequence[int] = (),
           peers: bool = True) -> tuple[str, dict]:
    """``seq2labels ablate``: train the spec's variants (or only rebuild the table) and write it;
    returns the table as Markdown and the written paths."""
    spec = load_spec(config)
    if table_only:
        paths = write_table(spec, out)
    else:
        paths = run_ablation(spec, Path(runs) / spec.name, out, only=only, force=force, extra=extra,
                             seeds=seeds, peers=peers)
    return table_markdown(spec, collect_rows(spec, Path(out))), paths
