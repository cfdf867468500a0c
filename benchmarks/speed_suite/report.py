"""The markdown report (benchmarks/results/speed.md): one section per measurement, for every result
file in a folder, old formats included. Reads the result JSON only; no torch."""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS

from .harness import PRECISIONS
from .tables import (error_row, fmt, fmt_runs, measured_time_to_best, memory_phases, prediction_row, prediction_rows,
                     precision_of, ratio, sgm_train_time, training_row, yes)
from .targets import targets_markdown
from .training import ENCODER_NAMES, PLAIN_PADDED


def summary_markdown(folder: Path = RESULTS) -> str:
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("speed_*.json"))]
    lines = ["# Speed (benchmarks/speed.py)", "",
             "Every timing is the median of the runs listed beside it (wall and CPU seconds of the measuring "
             "process); every phase ran in its own process (its peak RSS is that process's maximum resident "
             "set). The machine is shared with other jobs (load averages per phase are in the JSON files), so "
             "compare numbers within one run, preferably per CPU second.", ""]
    lines += targets_markdown(records)
    for record in records:
        lines += dataset_markdown(record)
    return "\n".join(lines)


def dataset_markdown(record: dict) -> list[str]:
    ds, sizes = record["dataset"], record["sizes"]
    lines = [f"## {ds}", "",
             f"`{record['command']}` at commit `{record['git_commit']}` (at the start: "
             f"`{record.get('git_commit_at_start', '?')}`), {record.get('started_utc', '?')} to {record['date_utc']}; "
             f"model `{record['model']}`; medians of {sizes['repeats']} runs; benchmark processes at nice "
             f"{record.get('nice', '?')}"
             + (" (**--quick smoke run: subsets, 1 run; not a result**)" if record["quick"] else "") + ".", "",
             f"Peak RSS of a process that only imports torch + seq2labels and loads the model: "
             f"{fmt(record['baseline'].get('peak_rss_mib'))} MiB (every peak RSS below includes it).", ""]
    lines += _training_markdown(record) + _time_to_best_markdown(record) + _prediction_markdown(record)
    lines += _switches_markdown(record) + _threads_markdown(record) + _allocator_markdown(record)
    lines += _peers_markdown(record)
    return lines


def _training_markdown(record: dict) -> list[str]:
    tr = record["training"]
    rows = tr.get("rows", [])
    first = rows[0] if rows else {}
    memory = ", ".join(f"{p} {fmt(m.get('peak_rss_mib'))} MiB" for p, m in memory_phases(record).items())
    lines = ["### Training throughput", "",
             f"The SGM recipe (configs/{record['dataset']}/sgm.yaml) through the package Trainer: the first "
             f"{first.get('batches', '?')} batches of epoch 1 in each order, each run from fresh weights after an "
             f"untimed 2-batch warm-up, the runs of all variants interleaved; {tr.get('threads')} torch thread(s). "
             "tokens count real (unpadded) tokens. \"padded, random, fp32\" is the plain padded per-batch "
             "implementation the ratios compare with. The peers' (padded, packed) teacher-forced decoder runs every "
             "step on every row, as a textbook implementation does; the package's drops rows past their EOS "
             "(`TEACHER_FORCING_KEEP_FRACTION`). bf16: the forward pass under bf16 autocast "
             "(`TrainerConfig.precision`; weights, gradients and optimizer state stay float32). Peak RSS: the "
             f"package encoder alone (bucketed, one run, own process per precision) {memory or '-'}; the process "
             f"running all {len(rows)} variants {fmt(tr.get('peak_rss_mib'))} MiB.", "",
             "| encoder | batch order | precision | docs/s | tokens/s | docs/CPU-s | tokens/CPU-s | padding "
             "| wall s (runs) | CPU s (runs) | x plain padded (CPU) | x plain padded (wall) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    if "error" in tr:
        lines.append(error_row(tr, 12))
    plain = training_row(tr, *PLAIN_PADDED) or {}
    for t in rows:
        lines.append(f"| {ENCODER_NAMES[t['encoder']]} | {t['order']} | {precision_of(t)} | {fmt(t['docs_per_s'], 1)} "
                     f"| {fmt(t['tokens_per_s'])} | {fmt(t['docs_per_cpu_s'], 1)} | {fmt(t['tokens_per_cpu_s'])} "
                     f"| {t['padding_fraction']:.0%} | {t['seconds']:.1f} ({fmt_runs(t['seconds_runs'])}) "
                     f"| {t['cpu_seconds']:.1f} ({fmt_runs(t['cpu_seconds_runs'])}) "
                     f"| {ratio(t['tokens_per_cpu_s'], plain.get('tokens_per_cpu_s'))} "
                     f"| {ratio(t['tokens_per_s'], plain.get('tokens_per_s'))} |")
    return lines + [""]


def _time_to_best_markdown(record: dict) -> list[str]:
    lines = ["### Time to the best validation score", "",
             "From the start of `recipe.train` to the end of the epoch with the best validation micro-F1 "
             "(setup + epochs, each epoch including its validation decoding). A recorded run's setup is its "
             "train_seconds minus its epochs. precision: `train.precision` (bf16 also validates under bf16).", "",
             "| source | threads | precision | best epoch / epochs run | valid micro-F1 | wall s to best "
             "| CPU s to best | whole run wall s |", "|---|---|---|---|---|---|---|---|"]
    entries = [("this run", m) for m in measured_time_to_best(record)]
    recorded = record["time_to_best"].get("recorded")
    if recorded:
        entries.append((f"`{recorded['source']}` (commit {str(recorded.get('git_commit'))[:12]}, "
                        f"{recorded.get('date_utc')})", recorded))
    for source, r in entries:
        if "error" in r:
            lines.append(error_row({"error": f"{precision_of(r)}: {r['error']}"}, 8))
            continue
        lines.append(f"| {source} | {r['threads']} | {precision_of(r)} | {r['best_epoch']} / {r['epochs_run']} "
                     f"| {r['valid_micro_f1']:.4f} | {r['seconds_to_best']:.0f} "
                     f"| {fmt(r.get('cpu_seconds_to_best'))} | {r['train_seconds']:.0f} |")
    return lines + [""]


def _prediction_markdown(record: dict) -> list[str]:
    pred = record["prediction"]
    lines = ["### Prediction", "",
             f"`LabelGenerator.predict` end to end (tokenize, encode, decode) on the test set, batch 1 on its first "
             f"{record['sizes']['bs1_docs']} documents; max_labels={pred.get('max_labels')}, "
             f"min_labels={pred.get('min_labels')} (the model's own decode settings); untimed warm-up first; runs "
             f"interleaved. bf16: `predict(..., precision=\"bf16\")`, autocast around encoding and decoding (the "
             "attention energy and the softmaxes stay float32); its last two columns compare it with the fp32 row "
             f"of the same decoding and batch size. Peak RSS of the phase: {fmt(pred.get('peak_rss_mib'))} MiB. "
             "With 2 threads, CPU seconds add up both threads.", "",
             "| decoding | batch | threads | precision | docs | docs/s | docs/CPU-s | wall s (runs) | micro-F1 "
             "| same labels as batch 256 | same labels as fp32 | micro-F1 - fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    if "error" in pred:
        lines.append(error_row(pred, 12))
    for r in prediction_rows(record):
        diff = r.get("micro_f1_minus_fp32")
        lines.append(f"| {r['decoding']} | {r['batch_size']} | {r['threads']} | {precision_of(r)} | {r['docs']} "
                     f"| {fmt(r['docs_per_s'], 1)} | {fmt(r['docs_per_cpu_s'], 1)} "
                     f"| {r['seconds']:.2f} ({fmt_runs(r['seconds_runs'], 2)}) | {r['micro_f1']:.4f} "
                     f"| {r.get('same_as_batch_256', '')} | {r.get('same_as_fp32', '')} "
                     f"| {'' if diff is None else f'{diff:+.4f}'} |")
    return lines + [""]


def _switches_markdown(record: dict) -> list[str]:
    sw = record["decode_switches"]
    lines = ["### Decoding switches (beam 5, batch 256, decoding only)", "",
             "Texts encoded once; each row changes one switch of the default (first row); runs interleaved. "
             f"`decode()` {'has' if sw.get('has_compact') else 'has no'} a `compact` switch. Early stop off: every "
             "batch runs all max_labels steps (a benchmark-side switch, see `without_early_stop`). bf16 autocast: "
             "the default run inside `seq2labels.training.precision.autocast(device, \"bf16\")`. Encoder outputs copied per "
             "hypothesis: the model is wrapped so that it reports `static_per_example = False`, and beam search "
             "repeats the encoder outputs, keys and mask once per hypothesis instead of sharing one copy per "
             "example. Attention energy in one piece: `seq2labels.models.attention.ENERGY_CHUNK_ELEMENTS` set to 2^62 "
             "during that row's runs only. Encoder reversal before 6903dbe: `encoder_as_before_6903dbe` puts back "
             "the `gather` with an expanded index for the backward direction's reversal (now one `index_select` of "
             "whole rows) and the second mask multiply in pooling, during that row's runs only (older result files "
             "have no such row). The first decoder step runs once per example (all of an example's "
             "hypotheses start from the same empty prefix) in every row: it cannot be switched off, and its "
             "effect shows in \"rows stepped\" compared with runs before it. Decoder steps and hypothesis rows "
             "stepped are summed over the batches.", "",
             "| switch | setting | docs/s | docs/CPU-s | x default (CPU) | micro-F1 | same labels | decoder steps "
             "| rows stepped |", "|---|---|---|---|---|---|---|---|---|"]
    if "error" in sw:
        lines.append(error_row(sw, 9))
    rows = sw.get("rows", [])
    default = rows[0]["docs_per_cpu_s"] if rows else None
    for r in rows:
        lines.append(f"| {r['switch']} | {r['setting']} | {fmt(r['docs_per_s'], 1)} | {fmt(r['docs_per_cpu_s'], 1)} "
                     f"| {ratio(r['docs_per_cpu_s'], default)} | {r['micro_f1']:.4f} | {r['same_as_default']} "
                     f"| {r['decoder_steps']} | {r['hypothesis_rows_stepped']:,} |")
    return lines + [""]


def _threads_markdown(record: dict) -> list[str]:
    if not record.get("threads_sweep"):
        return []
    lines = ["### Threads", "",
             "Package encoder, bucketed batches (training); `predict` at batch 256; each in fp32 and bf16. CPU "
             "seconds add up all threads, so with 2 threads docs/s (wall) is the number that can improve.", "",
             "| threads | precision | train docs/s | train docs/CPU-s | greedy docs/s | beam5 docs/s "
             "| beam5 docs/CPU-s |", "|---|---|---|---|---|---|---|"]
    sweep = [(record["threads"][0], record["training"], record["prediction"])]
    sweep += [(t["threads"], t["training"], t["prediction"]) for t in record["threads_sweep"]]
    for threads, train_phase, pred in sweep:
        for precision in PRECISIONS:
            train = training_row(train_phase, "ours", "bucketed", precision)
            greedy = prediction_row(pred, "greedy", 256, precision)
            beam = prediction_row(pred, "beam5", 256, precision)
            if not (train or greedy or beam):
                continue
            train, greedy, beam = train or {}, greedy or {}, beam or {}
            lines.append(f"| {threads} | {precision} | {fmt(train.get('docs_per_s'), 1)} "
                         f"| {fmt(train.get('docs_per_cpu_s'), 1)} | {fmt(greedy.get('docs_per_s'), 1)} "
                         f"| {fmt(beam.get('docs_per_s'), 1)} | {fmt(beam.get('docs_per_cpu_s'), 1)} |")
    return lines + [""]


def _raised(phase: dict) -> str:
    value = phase.get("malloc_thresholds_raised")
    return "-" if value is None else yes(value)


def _allocator_markdown(record: dict) -> list[str]:
    settings = (record.get("allocator") or {}).get("settings")
    if not isinstance(settings, list):
        return []
    lines = ["### Memory allocator", "",
             "The same training (package encoder, bucketed, fp32) and batch-256 `predict` (fp32 and bf16 in one "
             f"process) phases, each in its own process, {record['threads'][0]} thread(s), processes run back to "
             "back, under two malloc settings. **glibc default**: `SEQ2LABELS_MALLOC=default` in the environment, "
             "so seq2labels.training.allocator leaves glibc alone: big blocks come from fresh `mmap` calls and freed memory "
             "at the top of the heap goes back to the kernel, so the next step's tensors fault in new zeroed pages. "
             "**package default**: no variable, so seq2labels.training.allocator raises glibc's mmap and trim thresholds (as "
             "`recipe.train` and `LabelGenerator.predict` do in every other phase here): freed memory stays in "
             "the process for reuse, and resident memory stays near its peak. \"raised\": whether the phase's "
             "process reported the thresholds raised (training / predict).", "",
             "| malloc | raised | precision | train docs/CPU-s | greedy docs/CPU-s | beam5 docs/CPU-s | beam5 docs/s "
             "| peak RSS train MiB | peak RSS predict MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for setting in settings:
        training, prediction = setting.get("training", {}), setting.get("prediction", {})
        for precision in PRECISIONS:
            train = training_row(training, "ours", "bucketed", precision) or {}
            greedy = prediction_row(prediction, "greedy", 256, precision) or {}
            beam = prediction_row(prediction, "beam5", 256, precision) or {}
            if not (train or greedy or beam):
                continue
            lines.append(f"| {setting['name']} | {_raised(training)} / {_raised(prediction)} | {precision} "
                         f"| {fmt(train.get('docs_per_cpu_s'), 1)} | {fmt(greedy.get('docs_per_cpu_s'), 1)} "
                         f"| {fmt(beam.get('docs_per_cpu_s'), 1)} | {fmt(beam.get('docs_per_s'), 1)} "
                         f"| {fmt(training.get('peak_rss_mib')) if train else '-'} "
                         f"| {fmt(prediction.get('peak_rss_mib'))} |")
        for phase in (training, prediction):
            if "error" in phase:
                lines.append(error_row({"error": f"{setting['name']}: {phase['error']}"}, 9))
    return lines + [""]


def _peers_markdown(record: dict) -> list[str]:
    sgm_rows = [r for r in record["prediction"].get("rows", []) if r["batch_size"] == 256]
    by = {r["decoding"]: r for r in sgm_rows if precision_of(r) == "fp32"}
    sgm_train, where, is_cpu = sgm_train_time(record)
    lines = ["### Peers (same run)", "",
             f"Trained on the training split, predicting the test set in batches of 256, {record['threads'][0]} "
             f"thread(s). SGM train time: seconds to the best validation score ({where}); the peer's train time "
             f"in the ratio is its {'CPU' if is_cpu else 'wall'} seconds. Prediction ratios use docs per CPU "
             "second of SGM in fp32.", "",
             "| method | train s | train CPU s | predict docs/s | docs/CPU-s | micro-F1 | peak RSS MiB "
             "| SGM beam5 / peer (predict) | SGM greedy / peer (predict) | SGM / peer (train time) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sgm_rows:
        lines.append(f"| SGM {r['decoding']} ({precision_of(r)}) | {fmt(sgm_train)} ({'CPU' if is_cpu else 'wall'}) | "
                     f"| {fmt(r['docs_per_s'], 1)} | {fmt(r['docs_per_cpu_s'], 1)} | {r['micro_f1']:.4f} "
                     f"| {fmt(record['prediction'].get('peak_rss_mib'))} | | | |")
    for p in record["peers"]:
        if "error" in p:
            lines.append(error_row(p, 10))
            continue
        pr = p["predict"]
        peer_train = p["train_cpu_seconds"] if is_cpu else p["train_seconds"]
        lines.append(f"| {p['method']} | {p['train_seconds']:.1f} | {p['train_cpu_seconds']:.1f} "
                     f"| {fmt(pr['docs_per_s'], 1)} | {fmt(pr['docs_per_cpu_s'], 1)} | {p['micro_f1']:.4f} "
                     f"| {fmt(p['peak_rss_mib'])} "
                     f"| {ratio(by.get('beam5', {}).get('docs_per_cpu_s'), pr['docs_per_cpu_s'], 3)} "
                     f"| {ratio(by.get('greedy', {}).get('docs_per_cpu_s'), pr['docs_per_cpu_s'], 3)} "
                     f"| {ratio(sgm_train, peer_train, 1)} |")
    return lines + [""]
