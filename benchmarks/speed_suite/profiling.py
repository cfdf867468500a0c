"""``--profile``: pyinstrument over beam-5 prediction and one training epoch, to benchmarks/results/profile.md."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from common import RESULTS, provenance

from .harness import data_files, load_test, model_dir, set_threads
from .training import measure_training


def profile(args) -> None:
    """pyinstrument over beam-5 prediction and one training epoch; top functions to profile.md."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is not installed; pip install pyinstrument") from None
    from seq2labels.utils.atomic import atomic_write_text

    dataset = args.dataset[0]
    threads = args.threads[0]
    set_threads(threads)
    sections = []
    spec = {"dataset": dataset, "threads": threads, "model": str(model_dir(dataset)), "repeats": 1,
            "batch_sizes": [256], "bs1_docs": 1, "test_docs": 200 if args.quick else None}
    from seq2labels.pipeline.generator import load_model

    generator = load_model(spec["model"])
    test = load_test(dataset, spec["test_docs"])
    texts = [ex.text for ex in test]
    generator.predict(texts[:16], beam_size=5)
    profiler = Profiler(interval=0.001)
    profiler.start()
    generator.predict(texts, beam_size=5, batch_size=256)
    profiler.stop()
    sections.append((f"Beam-5 prediction: `LabelGenerator.predict` on {len(texts)} test documents, batch 256",
                     profiler))
    profiler = Profiler(interval=0.001)

    @contextlib.contextmanager
    def profiled():
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()

    trained = measure_training({"dataset": dataset, "threads": threads, "variants": [["ours", "bucketed", "fp32"]],
                                "train_batches": 5 if args.quick else None,
                                "train_docs": 2000 if args.quick else None, "repeats": 1}, around_fit=profiled)
    sections.append((f"One training epoch: `Trainer.fit` over the {trained['rows'][0]['batches']} batches of epoch 1 "
                     "(package encoder, length-bucketed batches; after a 2-batch warm-up)", profiler))
    lines = ["# Where the time goes (pyinstrument)", "",
             f"`{Path(sys.executable).name} {' '.join(sys.argv)}` with OMP_NUM_THREADS="
             f"{os.environ.get('OMP_NUM_THREADS')}, {threads} torch thread(s); data set {dataset}.", ""]
    prov = provenance(list(data_files(dataset).values()))
    lines += [f"Commit `{prov['git_commit']}`, {prov['date_utc']}, {prov['machine']['cpu']} "
              f"({prov['machine']['cpu_count']} cores, shared).", ""]
    for title, prof in sections:
        lines += profile_tables(title, prof.last_session)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "profile.md", "\n".join(lines))
    print(RESULTS / "profile.md")


def profile_tables(title: str, session, top: int = 15) -> list[str]:
    """Self time and inclusive time per function (recursion counted once), as % of the total."""
    root = session.root_frame()
    total = root.time
    self_time: dict[str, float] = {}
    inclusive: dict[str, float] = {}

    def name(frame) -> str:
        where = f"{frame.file_path_short}:{frame.line_no}" if frame.file_path_short else ""
        return f"`{frame.function}` {where}".strip()

    def walk(frame, active: frozenset) -> None:
        if frame.is_synthetic:                      # pyinstrument's "[self]" leaves: counted by their parent
            return
        key = name(frame)
        self_time[key] = self_time.get(key, 0.0) + frame.total_self_time
        if key not in active:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        for child in frame.children:
            walk(child, active | {key})

    walk(root, frozenset())
    lines = [f"## {title}", "", f"Total {total:.2f} s sampled.", "", "Top functions by self time:", "",
             "| function | self s | % |", "|---|---|---|"]
    for key, t in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {key} | {t:.2f} | {t / total:.1%} |")
    lines += ["", "Top functions by inclusive time (callers of everything below them; the entry points "
              "near 100% are left out):", "", "| function | inclusive s | % |", "|---|---|---|"]
    shown = [(k, t) for k, t in sorted(inclusive.items(), key=lambda kv: -kv[1]) if t < 0.98 * total]
    for key, t in shown[:top]:
        lines.append(f"| {key} | {t:.2f} | {t / total:.1%} |")
    return lines + [""]
