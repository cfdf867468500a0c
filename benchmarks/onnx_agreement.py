"""torch vs ONNX Runtime on the whole Reuters-21578 test set with the real trained SGM.

    OMP_NUM_THREADS=1 python benchmarks/onnx_agreement.py

Exports the model (encoder + one decoder step) to a temporary folder, decodes all 3,019 test
documents greedily and with beam 5 through both backends (the same search code), and
reports the fraction of identical label sequences, the largest score / probability
differences, and decoding speed (docs/s, batch 256, beam 5, `--threads` (default 1), median of 3 runs,
the two backends interleaved). Writes benchmarks/results/onnx_agreement.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.pipeline.export import export_onnx  # noqa: E402
from seq2labels.pipeline.generator import load_model

MODEL = ROOT / "benchmarks" / "runs" / "reuters21578-sgm-w2v-bow-len200" / "model"
TEST = SHARED_DATA / "reuters21578" / "test.jsonl.gz"


def read_test(path: Path):
    with warnings.catch_warnings():   # one test line lists a label twice; the reader warns once
        warnings.simplefilter("ignore", UserWarning)
        return read_examples(path)


def timed_decode(generator, encoded, beam: int, batch_size: int) -> tuple[list[dict], float]:
    """Rows and docs/s of decoding the pre-tokenized set (tokenizing is the same for every backend)."""
    start = time.perf_counter()
    rows = generator.decode_encoded(encoded, beam_size=beam, batch_size=batch_size)
    return rows, len(encoded) / (time.perf_counter() - start)


def agreement(reference: list[dict], other: list[dict]) -> dict:
    """Identical label sequences, and the largest differences where they are identical."""
    same = [a["ids"] == b["ids"] for a, b in zip(reference, other, strict=True)]
    score = prob = 0.0
    for a, b, s in zip(reference, other, same):
        if s:
            score = max(score, abs(a["score"] - b["score"]))
            prob = max(prob, float(np.max(np.abs(np.subtract(a["probs"], b["probs"])), initial=0.0)),
                       float(np.max(np.abs(a["label_scores"] - b["label_scores"]))))
    return {"docs": len(same), "labels_identical_fraction": sum(same) / len(same),
            "docs_differing": len(same) - sum(same), "max_abs_score_diff": score, "max_abs_prob_diff": prob}


def load_average() -> list[float] | None:
    """Timings are only comparable within one run; the load says how busy the machine was."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--test", type=Path, default=TEST)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime) intra-op threads")
    parser.add_argument("--limit", type=int, help="only the first N test documents (smoke runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "onnx_agreement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    generator = load_model(args.model)
    test = read_test(args.test)[: args.limit]
    encoded = generator.encode_texts([ex.text for ex in test])
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        onnx_dir = export_onnx(generator, Path(tmp) / "onnx")
        export_seconds = time.perf_counter() - started
        sizes = {p.name: p.stat().st_size for p in onnx_dir.glob("*.onnx")}
        results: dict[str, dict] = {}
        speed: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        rows: dict[tuple[str, int], list[dict]] = {}
        for repeat in range(args.repeats):
            for backend in ("torch", "onnxruntime"):   # interleaved: load changes hit both alike
                generator.with_backend(backend, onnx_dir=onnx_dir if backend == "onnxruntime" else None)
                beams = (1, 5) if repeat == 0 else (5,)
                for beam in beams:
                    decoded, docs_per_s = timed_decode(generator, encoded, beam, args.batch_size)
                    if beam == 5:
                        speed[backend].append(docs_per_s)
                    rows.setdefault((backend, beam), decoded)
                    logging.info("%s beam %d: %.1f docs/s", backend, beam, docs_per_s)
        generator.with_backend("torch")
    for beam in (1, 5):
        results[f"beam_{beam}"] = agreement(rows["torch", beam], rows["onnxruntime", beam])
    medians = {b: statistics.median(v) for b, v in speed.items()}
    record = {
        "benchmark": "onnx_agreement", "model": str(args.model.relative_to(ROOT)) if ROOT in args.model.parents
        else str(args.model), "data_set": "reuters21578 test", "docs": len(test),
        "agreement": results,
        "speed": {"batch_size": args.batch_size, "beam_size": 5, "threads": torch.get_num_threads(),
                  "repeats": args.repeats, "what": "decode_encoded (model + search; texts pre-tokenized)",
                  "docs_per_s_runs": speed, "docs_per_s_median": medians,
                  "onnxruntime_over_torch": medians["onnxruntime"] / medians["torch"],
                  # each repeat ran both back to back: the median of their ratios is less load-sensitive
                  "onnxruntime_over_torch_paired_median": statistics.median(
                      o / t for o, t in zip(speed["onnxruntime"], speed["torch"]))},
        "export": {"seconds": export_seconds, "bytes": sizes},
        "load_average_1_5_15min": {"before": load_before, "after": load_average()},
        "provenance": provenance([args.test, args.model / "model.safetensors"]),
    }
    import onnxruntime
    record["provenance"]["machine"]["onnxruntime"] = onnxruntime.__version__
    atomic_write_json(args.out.with_suffix(".json"), record)
    atomic_write_text(args.out.with_suffix(".md"), to_markdown(record))
    print(to_markdown(record))


def to_markdown(r: dict) -> str:
    s = r["speed"]
    lines = [f"# torch vs ONNX Runtime: {r['model']} on the Reuters-21578 test set ({r['docs']} docs)", "",
             "Same search code (seq2labels.decoding) over the torch model and over the exported graphs.", "",
             "| decoding | labels identical | docs differing | max abs score diff | max abs prob diff |",
             "|---|---:|---:|---:|---:|"]
    for name, a in r["agreement"].items():
        lines.append(f"| {name.replace('_', ' ')} | {a['labels_identical_fraction']:.4f} | {a['docs_differing']} | "
                     f"{a['max_abs_score_diff']:.2e} | {a['max_abs_prob_diff']:.2e} |")
    lines += ["", f"Speed, {s['what']}: batch {s['batch_size']}, beam {s['beam_size']}, {s['threads']} thread(s), "
              f"median of {s['repeats']} interleaved runs.", "",
              "| backend | docs/s (median) | runs |", "|---|---:|---|"]
    for backend, median in s["docs_per_s_median"].items():
        lines.append(f"| {backend} | {median:.1f} | {', '.join(f'{v:.1f}' for v in s['docs_per_s_runs'][backend])} |")
    p = r["provenance"]
    lines += ["", f"ONNX Runtime / torch: **{s['onnxruntime_over_torch']:.2f}x** (ratio of medians; median of the "
              f"per-repeat ratios {s['onnxruntime_over_torch_paired_median']:.2f}x). Export took "
              f"{r['export']['seconds']:.1f} s; graphs {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in r['export']['bytes'].items())}.",
              "", f"Command `{p['command']}`, commit `{p['git_commit']}`, {p['date_utc']}, "
              f"{p['machine']['cpu']} ({p['machine']['cpu_count']} cores; load average before/after "
              f"{r['load_average_1_5_15min']['before']} / {r['load_average_1_5_15min']['after']}: the machine is "
              "shared, so compare only numbers from the same run), torch "
              f"{p['machine'].get('torch')}, onnxruntime {p['machine'].get('onnxruntime')}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
