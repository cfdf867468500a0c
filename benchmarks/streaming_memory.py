"""Does ``seq2labels predict`` keep memory flat on a 1 GB input? Peak RSS on 1 GB vs 10 MB.

Builds a plain-text input (one text per line) from the real Reuters-21578 test articles: each
line concatenates consecutive articles (starting one article later on every line) until it
holds ``--line-kb`` kilobytes, and lines are written until the file reaches the target size.
Runs ``seq2labels predict MODEL INPUT --format text`` in a subprocess (one torch thread) on a
``--small-mb`` file and on a ``--large-gb`` file, samples the child's RSS with psutil every
``--interval`` seconds and takes the exact peak from ``wait4`` (``ru_maxrss``). Reports wall
time, documents/s and input MB/s, checks one output line per input line, deletes the inputs and
outputs (they live in a temporary folder under /tmp), and writes
``benchmarks/results/streaming_memory.json`` and ``.md`` with provenance.

``--compare-unbounded`` adds one more large run in which a chunk is bounded by its number of
texts only (``--chunk-size`` lines, ``seq2labels.data.inputs.CHUNK_CHARS`` lifted), the behaviour before
the 16M-character bound, to show what that bound buys.

    OMP_NUM_THREADS=1 python benchmarks/streaming_memory.py            # 10 MB and 1 GB
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402

REUTERS_TEST = SHARED_DATA / "reuters21578" / "test.jsonl.gz"
MODEL = Path(__file__).resolve().parent / "runs" / "reuters21578-sgm" / "model"
UNBOUNDED = ("import sys, seq2labels.data.inputs as c; c.CHUNK_CHARS = 1 << 62; "
             "raise SystemExit(c.main(sys.argv[1:]))")


def reuters_texts(path: Path) -> list[str]:
    """The test articles with whitespace (newlines included) collapsed, so each stays on one line."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [" ".join(json.loads(line)["text"].split()) for line in f]


def write_input(path: Path, texts: list[str], target_bytes: int, line_bytes: int) -> dict:
    """Lines of concatenated articles, ~``line_bytes`` each, until the file holds ``target_bytes``."""
    n_lines = total = 0
    start = 0
    with open(path, "w", encoding="utf-8") as f:
        while total < target_bytes:
            parts, size, i = [], 0, start
            while size < line_bytes:
                text = texts[i % len(texts)]
                parts.append(text)
                size += len(text.encode("utf-8")) + 1
                i += 1
            line = " ".join(parts) + "\n"
            f.write(line)
            total += len(line.encode("utf-8"))
            n_lines += 1
            start = (start + 1) % len(texts)
    return {"bytes": total, "lines": n_lines, "mean_line_bytes": round(total / n_lines) if n_lines else 0}


def run_predict(model: Path, inp: Path, out: Path, interval: float, batch_size: int, chunk_size: int | None,
                unbounded: bool) -> dict:
    """One ``seq2labels predict`` subprocess: wall and CPU time, sampled RSS and the exact peak RSS."""
    args = ["predict", str(model), str(inp), "--format", "text", "--output", str(out), "--batch-size",
            str(batch_size), "-q"]
    if chunk_size is not None:
        args += ["--chunk-size", str(chunk_size)]
    cmd = [sys.executable, "-c", UNBOUNDED, *args] if unbounded else [sys.executable, "-m", "seq2labels", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    stop = threading.Event()

    def sample() -> None:
        ps = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                samples.append((time.perf_counter() - started, ps.memory_info().rss))
            except psutil.Error:
                return
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}): {stderr[-2000:]}")
    return {"wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: ru_maxrss in KiB
            "rss_samples": samples, "command": " ".join(cmd[:1] + ["..."] + args if unbounded else cmd)}


def rss_profile(samples: list[tuple[float, int]], wall: float) -> dict:
    """RSS (MB) at fixed fractions of the run, and its peak among the samples after the first 10%."""
    def at(fraction: float) -> float:
        t = fraction * wall
        best = min(samples, key=lambda s: abs(s[0] - t))
        return round(best[1] / 2**20, 1)

    later = [rss for t, rss in samples if t >= 0.1 * wall] or [rss for _, rss in samples]
    return {"rss_mb_at": {f"{int(f * 100)}%": at(f) for f in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "max_sampled_rss_mb_after_10pct": round(max(later) / 2**20, 1), "n_samples": len(samples)}


def measure(name: str, model: Path, inp: Path, info: dict, workdir: Path, args, unbounded: bool = False) -> dict:
    out = workdir / f"{name}.predictions.jsonl"
    runs = []
    for _ in range(args.repeats if name in ("small", "startup") else 1):
        r = run_predict(model, inp, out, args.interval, args.batch_size, args.chunk_size, unbounded)
        with open(out, "rb") as f:
            n_out = sum(1 for _ in f)
        if n_out != info["lines"]:
            raise SystemExit(f"{name}: {n_out} predictions for {info['lines']} input lines")
        runs.append(r)
        out.unlink()
    best = sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]   # the median run
    walls = [r["wall_seconds"] for r in runs]
    row = {"input": info, "runs": len(runs), "wall_seconds": round(best["wall_seconds"], 2),
           "wall_seconds_all": [round(w, 2) for w in walls], "cpu_seconds": round(best["cpu_seconds"], 2),
           "docs_per_second": round(info["lines"] / best["wall_seconds"], 2),
           "docs_per_cpu_second": round(info["lines"] / best["cpu_seconds"], 2),
           "input_mb_per_second": round(info["bytes"] / 2**20 / best["wall_seconds"], 2),
           "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
           "chunking": "count only (CHUNK_CHARS lifted)" if unbounded else "count and 16M characters",
           "command": best["command"], **rss_profile(best["rss_samples"], best["wall_seconds"])}
    print(f"{name}: {info['bytes'] / 2**20:.1f} MB, {info['lines']} lines: peak RSS {row['peak_rss_mb']:.0f} MB, "
          f"{row['wall_seconds']:.1f} s, {row['docs_per_second']:.1f} docs/s", flush=True)
    return row


def tokenizer_cost(model: Path, inp: Path, n_texts: int = 100, repeats: int = 5) -> dict:
    """Milliseconds per ~100 KB input line: the bounded tokenization predict uses (stop after
    max_len tokens) against tokenizing the whole line and cutting after (what it did before)."""
    from seq2labels.data.tokenizer import tokenize
    from seq2labels.pipeline.generator import load_model

    generator = load_model(model)
    tok, max_len = generator.tokenizer, generator.config.text.max_len
    with open(inp, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for _, line in zip(range(n_texts), f)]

    def per_text_ms(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for text in texts:
                fn(text)
            times.append((time.perf_counter() - start) / len(texts) * 1000)
        return round(sorted(times)[len(times) // 2], 3)

    bounded = per_text_ms(lambda t: tokenize(tok, t, max_len))
    full = per_text_ms(lambda t: tok(t)[:max_len])
    assert all(tokenize(tok, t, max_len) == tok(t)[:max_len] for t in texts)
    return {"texts": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts)), "max_len": max_len,
            "bounded_ms_per_text": bounded, "full_then_cut_ms_per_text": full,
            "speedup": round(full / bounded, 1)}


def to_markdown(result: dict) -> str:
    rows = result["runs"]
    lines = ["# Streaming predict: memory on a 1 GB input", "",
             f"`seq2labels predict` on plain-text inputs built from the Reuters-21578 test articles, each line "
             f"~{result['settings']['line_kb']} KB (consecutive articles joined), model "
             f"`{result['settings']['model']}` (max_len {result['settings']['max_len']} tokens, beam "
             f"{result['settings']['beam_size']}), `--batch-size {result['settings']['batch_size']}` (both inputs "
             "fill whole batches, so the runs differ in input size only), one torch thread. Peak RSS is the "
             "child's ru_maxrss; wall time includes starting Python and loading the model.", "",
             "| run | input MB | lines | chunking | peak RSS MB | RSS at 10/50/90% MB | wall s | CPU s | docs/s "
             "| docs per CPU s | input MB/s |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        at = r["rss_mb_at"]
        lines.append(f"| {name} | {r['input']['bytes'] / 2**20:.0f} | {r['input']['lines']} | {r['chunking']} | "
                     f"{r['peak_rss_mb']:.0f} | {at['10%']:.0f} / {at['50%']:.0f} / {at['90%']:.0f} | "
                     f"{r['wall_seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['docs_per_second']:.1f} | "
                     f"{r['docs_per_cpu_second']:.1f} | {r['input_mb_per_second']:.2f} |")
    d, t = result["summary"], result["tokenizer"]
    lines += ["", f"Peak RSS, large minus small: **{d['peak_rss_growth_mb']:+.0f} MB** for "
              f"{d['input_ratio']:.0f}x the input. The large run predicts "
              f"{d['large_docs_per_cpu_second_after_startup']:.0f} documents per CPU second once started (its CPU "
              "time minus that of the `startup` run, which predicts an empty file); wall times on this shared "
              "machine are longer than CPU times.", "",
              f"Tokenizing one ~{t['mean_chars'] // 1000} KB line (median of {t['texts']} lines x 5): "
              f"{t['bounded_ms_per_text']:.2f} ms stopping after max_len = {t['max_len']} tokens, "
              f"{t['full_then_cut_ms_per_text']:.2f} ms tokenizing it all and cutting after "
              f"({t['speedup']:.0f}x); both give the same tokens.", "",
              f"Command: `{result['provenance']['command']}`; commit `{result['provenance']['git_commit']}`; "
              f"{result['provenance']['date_utc']}; {result['provenance']['machine']['cpu']} "
              f"({result['provenance']['machine']['cpu_count']} cores, shared with other jobs).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--data", type=Path, default=REUTERS_TEST)
    ap.add_argument("--small-mb", type=float, default=10.0)
    ap.add_argument("--large-gb", type=float, default=1.0)
    ap.add_argument("--line-kb", type=int, default=100, help="bytes per input line, in KB")
    ap.add_argument("--batch-size", type=int, default=64, help="passed to predict")
    ap.add_argument("--chunk-size", type=int, default=None, help="passed to predict (default: its own)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the small input (median wall time)")
    ap.add_argument("--interval", type=float, default=0.05, help="RSS sampling period, seconds")
    ap.add_argument("--compare-unbounded", action="store_true",
                    help="one more large run with chunks bounded by their number of texts only")
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--out", type=Path, default=RESULTS / "streaming_memory")
    args = ap.parse_args()

    from seq2labels.pipeline.files import read_model_config
    run_config = read_model_config(args.model)["run_config"]
    texts = reuters_texts(args.data)
    workdir = Path(tempfile.mkdtemp(prefix="s2l-streaming-", dir=args.tmp))
    try:
        small, large, empty = workdir / "small.txt", workdir / "large.txt", workdir / "empty.txt"
        empty_info = write_input(empty, texts, 0, args.line_kb * 1024)
        small_info = write_input(small, texts, int(args.small_mb * 2**20), args.line_kb * 1024)
        large_info = write_input(large, texts, int(args.large_gb * 2**30), args.line_kb * 1024)
        print(f"inputs in {workdir}: small {small_info}, large {large_info}", flush=True)
        tokenizer = tokenizer_cost(args.model, small)
        runs = {"startup": measure("startup", args.model, empty, empty_info, workdir, args),
                "small": measure("small", args.model, small, small_info, workdir, args),
                "large": measure("large", args.model, large, large_info, workdir, args)}
        if args.compare_unbounded:
            runs["large, count-only chunks"] = measure("large-unbounded", args.model, large, large_info, workdir,
                                                       args, unbounded=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    s, big, start = runs["small"], runs["large"], runs["startup"]
    net = round(big["input"]["lines"] / (big["cpu_seconds"] - start["cpu_seconds"]), 1)
    result = {
        "benchmark": "streaming_memory",
        "settings": {"model": str(args.model), "data": str(args.data), "line_kb": args.line_kb,
                     "small_mb": args.small_mb, "large_gb": args.large_gb, "chunk_size": args.chunk_size,
                     "batch_size": args.batch_size,
                     "max_len": run_config["text"]["max_len"], "beam_size": run_config["decode"]["beam_size"],
                     "interval_s": args.interval},
        "runs": runs,
        "summary": {"peak_rss_growth_mb": round(big["peak_rss_mb"] - s["peak_rss_mb"], 1),
                    "input_ratio": round(big["input"]["bytes"] / s["input"]["bytes"], 1),
                    "large_docs_per_cpu_second_after_startup": net},
        "tokenizer": tokenizer,
        "provenance": provenance([args.data, args.model / "model.safetensors"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(to_markdown(result), encoding="utf-8")
    print(to_markdown(result))


if __name__ == "__main__":
    main()
