"""Dynamic int8 quantization vs float32 (torch) vs ONNX Runtime on the Reuters-21578 test set.

    OMP_NUM_THREADS=1 python benchmarks/quantization.py

With the real trained SGM, decodes all 3,019 test documents with beam 5 (batch 256, one
thread by default, `--threads`) three times per variant, interleaved, and reports micro-/macro-F1, the share of
documents whose label set equals float32's, and docs/s (median of 3). Writes
benchmarks/results/quantization.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, provenance  # noqa: E402
from onnx_agreement import MODEL, TEST, load_average, read_test, timed_decode  # noqa: E402

import torch  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.pipeline.generator import load_model
from seq2labels.evaluation.metrics import evaluate_label_lists  # noqa: E402

VARIANTS = ("torch fp32", "torch int8 (dynamic)", "onnxruntime fp32")
REPORTED = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy")


def build_variants(model_dir: Path) -> dict:
    generator = load_model(model_dir)
    return {"torch fp32": generator,
            "torch int8 (dynamic)": generator.quantize("int8"),
            "onnxruntime fp32": load_model(model_dir).with_backend("onnxruntime")}


def metrics_of(generator, rows: list[dict], gold: list[list[str]]) -> dict:
    """The metrics evaluate() computes, from rows already decoded (unseen gold labels count as misses)."""
    predicted = [generator.label_vocab.decode(row["ids"]) for row in rows]
    known = set(generator.label_vocab.labels)
    unseen = sorted({label for labels in gold for label in labels if label not in known})
    metrics = evaluate_label_lists(gold, predicted, [*generator.label_vocab.labels, *unseen])
    return {name: metrics[name] for name in REPORTED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--test", type=Path, default=TEST)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime) intra-op threads")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--limit", type=int, help="only the first N test documents (smoke runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "quantization")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    test = read_test(args.test)[: args.limit]
    gold = [list(ex.labels) for ex in test]
    variants = build_variants(args.model)
    encoded = variants["torch fp32"].encode_texts([ex.text for ex in test])
    load_before = load_average()
    speed: dict[str, list[float]] = {name: [] for name in variants}
    rows: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name, generator in variants.items():   # interleaved: load changes hit every variant alike
            decoded, docs_per_s = timed_decode(generator, encoded, args.beam_size, args.batch_size)
            speed[name].append(docs_per_s)
            rows.setdefault(name, decoded)
            logging.info("%s: %.1f docs/s", name, docs_per_s)
    reference = [set(r["ids"]) for r in rows["torch fp32"]]
    results = {}
    for name, generator in variants.items():
        same = sum(set(r["ids"]) == ref for r, ref in zip(rows[name], reference)) / len(reference)
        results[name] = {**metrics_of(generator, rows[name], gold), "label_sets_equal_to_fp32": same,
                         "docs_per_s_runs": speed[name], "docs_per_s_median": statistics.median(speed[name])}
    base = results["torch fp32"]["docs_per_s_median"]
    for result in results.values():
        result["speed_vs_torch_fp32"] = result["docs_per_s_median"] / base
        # variants ran back to back in each repeat: the median of per-repeat ratios is less load-sensitive
        result["speed_vs_torch_fp32_paired_median"] = statistics.median(
            v / b for v, b in zip(result["docs_per_s_runs"], results["torch fp32"]["docs_per_s_runs"]))
    record = {
        "benchmark": "quantization", "model": str(args.model.relative_to(ROOT)) if ROOT in args.model.parents
        else str(args.model), "data_set": "reuters21578 test", "docs": len(test),
        "decoding": {"beam_size": args.beam_size, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                     "repeats": args.repeats, "timed": "decode_encoded (model + search; texts pre-tokenized)"},
        "quantization": "torch.ao.quantization.quantize_dynamic, qint8 weights: encoder nn.LSTM (per direction), "
                        "decoder nn.LSTMCell, every nn.Linear; embeddings, attention arithmetic and search in fp32",
        "results": results,
        "load_average_1_5_15min": {"before": load_before, "after": load_average()},
        "provenance": provenance([args.test, args.model / "model.safetensors"]),
    }
    import onnxruntime
    record["provenance"]["machine"]["onnxruntime"] = onnxruntime.__version__
    record["provenance"]["machine"]["quantized_engine"] = torch.backends.quantized.engine
    atomic_write_json(args.out.with_suffix(".json"), record)
    atomic_write_text(args.out.with_suffix(".md"), to_markdown(record))
    print(to_markdown(record))


def to_markdown(r: dict) -> str:
    d = r["decoding"]
    lines = [f"# int8 quantization and ONNX Runtime: {r['model']}, Reuters-21578 test ({r['docs']} docs)", "",
             f"Beam {d['beam_size']}, batch {d['batch_size']}, {d['threads']} thread(s); docs/s = median of "
             f"{d['repeats']} interleaved runs of {d['timed']}. Quantization: {r['quantization']}.", "",
             "| variant | micro-F1 | macro-F1 | example-F1 | label sets = fp32 | docs/s | vs torch fp32 "
             "(ratio of medians / median of paired ratios) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, x in r["results"].items():
        lines.append(f"| {name} | {x['micro_f1']:.4f} | {x['macro_f1']:.4f} | {x['example_f1']:.4f} | "
                     f"{x['label_sets_equal_to_fp32']:.4f} | {x['docs_per_s_median']:.1f} | "
                     f"{x['speed_vs_torch_fp32']:.2f}x / {x['speed_vs_torch_fp32_paired_median']:.2f}x |")
    p = r["provenance"]
    lines += ["", f"Command `{p['command']}`, commit `{p['git_commit']}`, {p['date_utc']}, {p['machine']['cpu']} "
              f"({p['machine']['cpu_count']} cores; load average before/after {r['load_average_1_5_15min']['before']}"
              f" / {r['load_average_1_5_15min']['after']}: the machine is shared, so compare only numbers from "
              f"the same run), torch {p['machine'].get('torch')} (int8 engine "
              f"{p['machine'].get('quantized_engine')}), onnxruntime {p['machine'].get('onnxruntime')}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
