"""Prediction throughput: ``LabelGenerator.predict`` end to end, greedy and beam 5, batch 256 and 1,
fp32 and bf16, with micro-F1 and the agreement between batch sizes and precisions."""

from __future__ import annotations

from .harness import PRECISIONS, load_test, micro_f1, same_labels, set_threads, timed_interleaved

DECODINGS = {"greedy": 1, "beam5": 5}


def measure_prediction(spec: dict) -> dict:
    """End-to-end ``LabelGenerator.predict`` (tokenize, encode, decode) at the given batch sizes and
    precisions (``spec["precisions"]``, default fp32 and bf16), all runs interleaved."""
    from seq2labels.training.allocator import keep_freed_memory
    from seq2labels.pipeline.generator import load_model

    set_threads(spec["threads"])
    raised = keep_freed_memory()                                         # what predict() does first
    generator = load_model(spec["model"])
    test = load_test(spec["dataset"], spec.get("test_docs"))
    texts, gold = [ex.text for ex in test], [list(ex.labels) for ex in test]
    names = list(generator.label_vocab.labels)
    precisions = spec.get("precisions", list(PRECISIONS))
    for precision in precisions:                                         # warm-up, not timed
        generator.predict(texts[:16], beam_size=5, batch_size=16, precision=precision)

    def task(n: int, beam: int, batch_size: int, precision: str):
        return lambda: generator.predict(texts[:n], beam_size=beam, batch_size=batch_size, precision=precision)

    sizes = {b: len(texts) if b > 1 else min(spec["bs1_docs"], len(texts)) for b in spec["batch_sizes"]}
    tasks = {(name, b, p): task(sizes[b], beam, b, p)
             for name, beam in DECODINGS.items() for b in spec["batch_sizes"] for p in precisions}
    rows = []
    for (name, batch_size, precision), measured in timed_interleaved(tasks, spec["repeats"]).items():
        n = sizes[batch_size]
        labels = [p.labels for p in measured.result]
        rows.append({"decoding": name, "beam_size": DECODINGS[name], "batch_size": batch_size,
                     "precision": precision, "threads": spec["threads"], "docs": n, **measured.record(n, "docs_"),
                     "micro_f1": round(micro_f1(gold[:n], labels, names), 6), "labels": labels})
    add_agreement(rows)
    for row in rows:
        del row["labels"]
    dec = generator.config.decode
    return {"rows": rows, "max_labels": dec.max_labels, "min_labels": dec.min_labels,
            "malloc_thresholds_raised": raised}


def add_agreement(rows: list[dict]) -> None:
    """Batch 1 against batch 256 of the same decoding and precision (batching must not change
    answers); a 16-bit row against fp32 of the same decoding and batch size (how much the
    precision changes them): same labels, and the micro-F1 difference."""
    def find(decoding: str, batch_size: int, precision: str) -> dict | None:
        return next((r for r in rows if (r["decoding"], r["batch_size"], r["precision"])
                     == (decoding, batch_size, precision)), None)

    for row in rows:
        large = find(row["decoding"], 256, row["precision"])
        if row["batch_size"] == 1 and large is not None:
            row["same_as_batch_256"] = same_labels(row["labels"], large["labels"])
        fp32 = find(row["decoding"], row["batch_size"], "fp32")
        if row["precision"] != "fp32" and fp32 is not None:
            row["same_as_fp32"] = same_labels(row["labels"], fp32["labels"])
            row["micro_f1_minus_fp32"] = round(row["micro_f1"] - fp32["micro_f1"], 6)
