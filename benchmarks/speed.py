"""Speed suite (issue 6): SGM training and prediction speed beside fastText and BR (LinearSVC), one run.

    OMP_NUM_THREADS=1 python benchmarks/speed.py --dataset reuters21578 goemotions --repeats 3 \
        --threads 1 2 [--time-to-best [DATASET ...]] [--time-to-best-precision fp32 bf16] [--quick]
    OMP_NUM_THREADS=1 python benchmarks/speed.py --profile --dataset reuters21578

Per data set it measures, every timing a median of ``--repeats`` runs with each run recorded:

* training throughput (docs/s, real tokens/s) of the SGM recipe on configs/<dataset>/sgm.yaml through
  the package's Trainer, for three encoders x two batch orders in float32: the package encoder (a plain
  RNN per direction, the backward one over texts reversed within their length), a textbook bidirectional
  ``nn.LSTM`` over the padded batch, and the same over packed sequences; length-bucketed batches
  (the recipe's order) or a plain random order. "padded, random, fp32" is the plain padded per-batch
  peer. The peers' teacher-forced decoder runs every step on every row (``textbook_decoder``); the
  package's drops rows past their EOS. Two more variants train under bf16 autocast (``TrainerConfig.precision``): the package encoder
  (bucketed) and the plain padded one;
* time to the best validation score: recorded in the quality runs' result files (per-epoch seconds)
  and, with ``--time-to-best``, one real training run per data set and ``--time-to-best-precision``
  (``train.precision``) in this run;
* prediction docs/s of the trained model (benchmarks/runs/<dataset>-sgm/model), greedy and beam 5,
  batch 256 on the whole test set and batch 1 on its first ``--bs1-docs`` documents, in float32 and
  under bf16 autocast (``predict(..., precision="bf16")``), with micro-F1 and bf16's agreement with fp32;
* before/after switches of decoding (beam 5, batch 256, decoding only): inference_mode / no_grad /
  autograd, length-sorted / input-order batches, early stop on/off, compaction (when decode() has it),
  bf16 autocast, encoder outputs shared by an example's hypotheses / copied per hypothesis, attention
  energy in slices / in one piece, the encoder's reversal by index_select / by gather (before 6903dbe);
* the thread counts of ``--threads`` (training throughput and batch-256 prediction, fp32 and bf16);
* glibc malloc's default settings (``SEQ2LABELS_MALLOC=default``) against the package's own
  (seq2labels.training.allocator raises the mmap/trim thresholds), ``ALLOCATOR_SETTINGS``;
* peak memory (max RSS) of every phase: each phase runs in its own process;
* peers in the same run: fastText (one-vs-all loss) and BR (LinearSVC) on TF-IDF: train seconds,
  predict docs/s at batch 256, micro-F1, and the SGM/peer ratios.

Writes benchmarks/results/speed_<dataset>.json (every run, command, commit, machine, data checksums,
load averages) and refreshes benchmarks/results/speed.md (older result files still render there).
``--profile`` writes benchmarks/results/profile.md instead (pyinstrument: beam-5 prediction and one
training epoch). The machine may be shared: compare numbers measured in the same run (the ratios),
not across runs.
"""

# The command line only; the measurements are benchmarks/speed_suite/ (one module per measurement over
# speed_suite.harness, see its __init__). Phase processes run this file again: ``--worker SPEC OUT``.

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA  # noqa: E402
from speed_suite import suite  # noqa: E402
from speed_suite.harness import DATASETS, PRECISIONS, data_files, model_dir, worker  # noqa: E402
from speed_suite.profiling import profile  # noqa: E402
from speed_suite.report import summary_markdown  # noqa: E402
from speed_suite.suite import run_dataset  # noqa: E402
from speed_suite.time_to_best import measure_time_to_best_phase, wants_time_to_best  # noqa: E402

log = logging.getLogger("speed")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (the median is reported); >= 3")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch threads; the first is used for everything, the others for the thread sweep")
    parser.add_argument("--train-batches", type=int, default=40, help="training batches per throughput run")
    parser.add_argument("--bs1-docs", type=int, default=200, help="test documents decoded at batch size 1")
    parser.add_argument("--time-to-best", nargs="*", choices=DATASETS, default=None, metavar="DATASET",
                        help="also train once to the best validation score (~10+ min each): the data sets "
                             "named, or every --dataset when none is named")
    parser.add_argument("--time-to-best-precision", nargs="+", choices=PRECISIONS, default=["fp32"],
                        metavar="PRECISION", help="train.precision of the --time-to-best runs, one run each "
                                                  "(fp32, bf16; default fp32)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, small subsets (not a result)")
    parser.add_argument("--profile", action="store_true", help="write benchmarks/results/profile.md instead")
    parser.add_argument("--out", type=Path, default=None,
                        help="result folder (default benchmarks/results; --quick: a temporary folder)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(t < 1 for t in args.threads) or args.train_batches < 1:
        parser.error("--repeats, --threads and --train-batches must be >= 1")
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], suite.PHASES)
        return
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.profile:
        profile(args)
        return
    from seq2labels.utils.atomic import atomic_write_json, atomic_write_text

    missing = [str(model_dir(d)) for d in args.dataset if not model_dir(d).exists()]
    missing += [str(SHARED_DATA / d) for d in args.dataset if "test" not in data_files(d)]
    if missing:
        raise SystemExit("missing: " + ", ".join(missing) + " (train the models with benchmarks/sgm_quality.py)")
    out = args.out or (Path(tempfile.gettempdir()) / "seq2labels-speed-quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    for dataset in args.dataset:
        record = run_dataset(dataset, args)
        atomic_write_json(out / f"speed_{dataset}.json", record)
        atomic_write_text(out / "speed.md", summary_markdown(out))
        log.info("wrote %s and %s", out / f"speed_{dataset}.json", out / "speed.md")
    for dataset in args.dataset:          # last: the longest phases, the other results are written first
        if wants_time_to_best(dataset, args):
            path = out / f"speed_{dataset}.json"
            record = json.loads(path.read_text())
            record["time_to_best"]["measured"] = []
            for precision in args.time_to_best_precision:
                record["time_to_best"]["measured"].append(measure_time_to_best_phase(dataset, args.threads[0],
                                                                                     precision))
                atomic_write_json(path, record)
                atomic_write_text(out / "speed.md", summary_markdown(out))


if __name__ == "__main__":
    main()
