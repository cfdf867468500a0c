"""The suite: every phase of one data set in the order they run, and the phase registry the phase
processes dispatch on (``python benchmarks/speed.py --worker SPEC OUT``)."""

from __future__ import annotations

import os
import time

from common import ROOT, provenance

from .allocator import measure_allocator
from .harness import PRECISIONS, data_files, model_dir, run_phase
from .memory import measure_baseline, training_memory
from .peers import measure_fasttext, measure_svc
from .prediction import measure_prediction
from .switches import measure_decode_switches
from .time_to_best import measure_time_to_best, time_to_best_from_file
from .training import TRAIN_VARIANTS, measure_training, package_variants

PHASES = {"training": measure_training, "time_to_best": measure_time_to_best, "prediction": measure_prediction,
          "decode_switches": measure_decode_switches, "fasttext": measure_fasttext, "svc": measure_svc,
          "baseline": measure_baseline}


def suite_specs(dataset: str, args) -> dict:
    """Sizes of every phase; --quick shrinks them for a smoke run."""
    quick = args.quick
    return {"repeats": 1 if quick else args.repeats, "train_batches": 3 if quick else args.train_batches,
            "train_docs": 2000 if quick else None, "test_docs": 200 if quick else None,
            "bs1_docs": 10 if quick else args.bs1_docs, "peer_train_docs": 1000 if quick else None,
            "fasttext": {"epoch": 2} if quick else {}}


def threads_sweep(train: dict, predict: dict, threads: list[int]) -> list[dict]:
    """The package encoder's training and batch-256 prediction at every thread count but the first."""
    return [{"threads": t, "training": run_phase({**train, "threads": t, "variants": package_variants()}),
             "prediction": run_phase({**predict, "threads": t, "batch_sizes": [256]})}
            for t in threads[1:]]


def run_dataset(dataset: str, args) -> dict:
    """Every phase of one data set, each in its own process; the result file's record."""
    sizes = suite_specs(dataset, args)
    threads = args.threads
    main_threads = threads[0]
    model = str(model_dir(dataset))
    common = {"dataset": dataset, "repeats": sizes["repeats"], "model": model}
    from seq2labels.utils.provenance import git_commit

    record: dict = {"dataset": dataset, "sizes": sizes, "threads": threads, "quick": args.quick,
                    "model": str(model_dir(dataset).relative_to(ROOT)), "git_commit_at_start": git_commit(),
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record["baseline"] = run_phase({**common, "phase": "baseline", "threads": main_threads})
    train = {**common, "phase": "training", "train_batches": sizes["train_batches"],
             "train_docs": sizes["train_docs"]}
    predict = {**common, "phase": "prediction", "bs1_docs": sizes["bs1_docs"], "test_docs": sizes["test_docs"],
               "precisions": list(PRECISIONS)}
    record["training"] = run_phase({**train, "threads": main_threads, "variants": [list(v) for v in TRAIN_VARIANTS]})
    record["training_memory"] = training_memory(train, main_threads)
    record["prediction"] = run_phase({**predict, "threads": main_threads, "batch_sizes": [256, 1]})
    record["decode_switches"] = run_phase({**common, "phase": "decode_switches", "threads": main_threads,
                                           "batch_size": 256, "test_docs": sizes["test_docs"]})
    record["threads_sweep"] = threads_sweep(train, predict, threads)
    record["allocator"] = measure_allocator(train, predict, main_threads)
    peer = {**common, "threads": main_threads, "train_docs": sizes["peer_train_docs"],
            "test_docs": sizes["test_docs"], "fasttext": sizes["fasttext"]}
    record["peers"] = [run_phase({**peer, "phase": "fasttext"}), run_phase({**peer, "phase": "svc"})]
    record["time_to_best"] = {"recorded": time_to_best_from_file(dataset)}
    files = list(data_files(dataset).values())
    model_file = model_dir(dataset) / "model.safetensors"
    from seq2labels.utils.provenance import sha256

    record["model_sha256"] = sha256(model_file) if model_file.exists() else None
    record.update(provenance(files))
    record["nice"] = os.nice(0)
    return record
