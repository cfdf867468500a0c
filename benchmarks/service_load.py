"""Load test of `seq2labels serve`: N requests of one text each from concurrent clients over loopback HTTP.

    python benchmarks/service_load.py                     # Reuters-21578 SGM model, 2000 requests, 4 clients, 3 runs
    python benchmarks/service_load.py --requests 200 --runs 1 --model runs/x/model --texts texts.jsonl.gz

The server is a separate process (`seq2labels serve MODEL --threads 1` on a free loopback port); the
clients are threads of this process, each with its own keep-alive connection (http.client). Every
response status is counted (the run fails on any 5xx or connection error), latencies are measured per
request, and the peer measured in the same run is the same model called in process
(`LabelGenerator.predict` on one text at a time, one torch thread): the difference is what HTTP,
JSON and queueing add. Writes benchmarks/results/service_load.json and .md with the command, git
commit, machine and data checksums.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.data.readers import read_examples  # noqa: E402

DEFAULT_MODEL = ROOT / "benchmarks" / "runs" / "reuters21578-sgm" / "model"
DEFAULT_TEXTS = SHARED_DATA / "reuters21578" / "test.jsonl.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the server -------------------------------------------------------------------------

def start_server(model: Path, port: int, log_path: Path, threads: int, beam_size: int | None,
                 device: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seq2labels", "serve", str(model), "--port", str(port), "--threads", str(threads),
           "--device", device, "--quiet"]  # --quiet: no access log line per request in the server's timings
    if beam_size:
        cmd += ["--beam-size", str(beam_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(port: int, proc: subprocess.Popen, log_path: Path, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            response = conn.getresponse()
            if response.status == 200:
                return json.loads(response.read())
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not healthy after {seconds:.0f} s:\n{log_path.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- the clients ------------------------------------------------------------------------

class Client(threading.Thread):
    """One keep-alive connection sending the requests it takes from a shared counter."""

    def __init__(self, port: int, bodies: list[bytes], next_index, timeout: float):
        super().__init__(daemon=True)
        self.port, self.bodies, self.next_index, self.timeout = port, bodies, next_index, timeout
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.bad_answers = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        while (i := self.next_index()) is not None:
            started = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=self.bodies[i], headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.errors[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                continue
            self.latencies.append(time.perf_counter() - started)
            self.statuses[response.status] += 1
            if response.status == 200 and len(json.loads(payload)["predictions"]) != 1:
                self.bad_answers += 1
        conn.close()


def counter(n: int):
    lock, state = threading.Lock(), {"i": 0}

    def next_index() -> int | None:
        with lock:
            if state["i"] >= n:
                return None
            state["i"] += 1
            return state["i"] - 1

    return next_index


def fire(port: int, bodies: list[bytes], clients: int, timeout: float) -> dict:
    """Send every body once from ``clients`` threads; statuses, errors and latency percentiles."""
    shared = counter(len(bodies))
    workers = [Client(port, bodies, shared, timeout) for _ in range(clients)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    latencies = np.array([x for w in workers for x in w.latencies]) * 1000.0
    statuses = sum((w.statuses for w in workers), Counter())
    errors = sum((w.errors for w in workers), Counter())
    return {"requests": len(bodies), "clients": clients, "wall_s": round(wall, 3),
            "requests_per_s": round(len(bodies) / wall, 2),
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "n_5xx": sum(v for k, v in statuses.items() if k >= 500),
            "connection_errors": dict(errors), "bad_answers": sum(w.bad_answers for w in workers),
            "latency_ms": {"p50": _pct(latencies, 50), "p90": _pct(latencies, 90), "p99": _pct(latencies, 99),
                           "max": round(float(latencies.max()), 2) if latencies.size else None,
                           "mean": round(float(latencies.mean()), 2) if latencies.size else None}}


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values.size else None


# ---- the in-process peer ----------------------------------------------------------------

def load_peer(model: Path, device: str):
    import torch

    from seq2labels.pipeline.generator import load_model

    torch.set_num_threads(1)
    return load_model(model, device=device)


def in_process_ms(generator, texts: list[str], beam_size: int | None) -> dict:
    """LabelGenerator.predict on one text at a time, one torch thread: the model's own cost per text."""
    generator.predict(texts[:5], beam_size=beam_size)  # warm-up
    times = []
    for text in texts:
        started = time.perf_counter()
        generator.predict([text], beam_size=beam_size)
        times.append((time.perf_counter() - started) * 1000.0)
    arr = np.array(times)
    return {"texts": len(texts), "p50": _pct(arr, 50), "p90": _pct(arr, 90), "p99": _pct(arr, 99),
            "mean": round(float(arr.mean()), 2), "texts_per_s": round(1000.0 / float(arr.mean()), 2)}


# ---- report -----------------------------------------------------------------------------

def markdown(record: dict) -> str:
    s = record["summary"]
    lines = [
        "# seq2labels serve: load test", "",
        f"Model `{record['model']}` ({record['health']['labels']} labels, beam {record['beam_size']}), texts from "
        f"`{record['texts_file']}` (one text per request, {record['requests_per_run']} requests per run, "
        f"{record['clients']} concurrent keep-alive clients in the benchmark process, "
        f"{len(record['runs'])} runs). The server is `seq2labels serve --threads {record['server_threads']} "
        f"--device {record['device']}` in its own process on loopback; it runs one inference at a time, so with "
        f"{record['clients']} clients a request mostly waits for the others. The peer, timed in each run just "
        f"before the load with the server idle, is the same model in process (`LabelGenerator.predict`, one text "
        f"per call, one torch thread) on {record['peer_texts']} of the texts sent.", "",
        "| run | requests/s | p50 ms | p90 ms | p99 ms | max ms | statuses | 5xx | connection errors "
        "| in-process p50 ms | in-process texts/s | service / in-process |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(record["runs"], 1):
        lat, peer = run["latency_ms"], run["in_process_ms"]
        lines.append(f"| {i} | {run['requests_per_s']} | {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} | "
                     f"{_statuses(run['status_counts'])} | {run['n_5xx']} | {sum(run['connection_errors'].values())} "
                     f"| {peer['p50']} | {peer['texts_per_s']} | {run['throughput_vs_in_process']:.2f} |")
    lines += [
        f"| **median** | **{s['requests_per_s']}** | **{s['p50_ms']}** | **{s['p90_ms']}** | **{s['p99_ms']}** | "
        f"| {_statuses(s['total_status_counts'])} | **{s['total_5xx']}** | {s['total_connection_errors']} "
        f"| {s['in_process_p50_ms']} | {s['in_process_texts_per_s']} | **{s['throughput_vs_in_process']:.2f}** |", "",
        f"Load average (1 min) before / after: {record['load_average_before']} / {record['load_average_after']} "
        f"on {record['provenance']['machine']['cpu_count']} CPUs shared with other jobs; tracebacks in the server "
        f"log: {s['server_log_tracebacks']}.", "",
        f"- command: `{record['provenance']['command']}`",
        f"- git commit: `{record['provenance']['git_commit']}`; date: {record['provenance']['date_utc']}",
        f"- machine: {record['provenance']['machine']['cpu']}, Python {record['provenance']['machine']['python']}",
        "",
    ]
    return "\n".join(lines)


def _statuses(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="data file whose texts are sent")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (one text each)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="runs; the summary takes their medians")
    parser.add_argument("--warmup", type=int, default=20, help="requests sent before measuring")
    parser.add_argument("--beam-size", type=int, help="default: the model's")
    parser.add_argument("--server-threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="the server's and the in-process peer's device")
    parser.add_argument("--peer-texts", type=int, default=200,
                        help="texts (spread over those sent) timed in process for the peer, each run")
    parser.add_argument("--timeout", type=float, default=120.0, help="client socket timeout, s")
    parser.add_argument("--out", type=Path, default=RESULTS / "service_load")
    args = parser.parse_args()

    texts = [ex.text for ex in read_examples(args.texts)]
    sent = [texts[i % len(texts)] for i in range(args.requests)]
    bodies = [json.dumps({"texts": [text]}).encode() for text in sent]
    peer_texts = [sent[i * len(sent) // args.peer_texts] for i in range(min(args.peer_texts, len(sent)))]
    peer_model = load_peer(args.model, args.device)

    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="service_load-")) / "server.log"
    load_before = round(os.getloadavg()[0], 2)
    proc = start_server(args.model, port, log_path, args.server_threads, args.beam_size, args.device)
    try:
        health = wait_healthy(port, proc, log_path)
        fire(port, bodies[: args.warmup], args.clients, args.timeout)
        runs = []
        for r in range(args.runs):  # each run: the peer (server idle), then the load; their ratio
            peer = in_process_ms(peer_model, peer_texts, args.beam_size)
            run = fire(port, bodies, args.clients, args.timeout)
            run["in_process_ms"] = peer
            run["throughput_vs_in_process"] = round(run["requests_per_s"] / peer["texts_per_s"], 3)
            runs.append(run)
            print(f"run {r + 1}: {json.dumps(run)}", flush=True)
    finally:
        stop_server(proc)
    load_after = round(os.getloadavg()[0], 2)
    server_log = log_path.read_text(encoding="utf-8", errors="replace")

    totals = sum((Counter({int(k): v for k, v in run["status_counts"].items()}) for run in runs), Counter())
    summary = {
        "requests_per_s": _median(run["requests_per_s"] for run in runs),
        "p50_ms": _median(run["latency_ms"]["p50"] for run in runs),
        "p90_ms": _median(run["latency_ms"]["p90"] for run in runs),
        "p99_ms": _median(run["latency_ms"]["p99"] for run in runs),
        "total_status_counts": {str(k): v for k, v in sorted(totals.items())},
        "total_5xx": sum(run["n_5xx"] for run in runs),
        "total_connection_errors": sum(sum(run["connection_errors"].values()) for run in runs),
        "total_bad_answers": sum(run["bad_answers"] for run in runs),
        "server_log_tracebacks": server_log.count("Traceback"),
        "in_process_p50_ms": _median(run["in_process_ms"]["p50"] for run in runs),
        "in_process_texts_per_s": _median(run["in_process_ms"]["texts_per_s"] for run in runs),
        "throughput_vs_in_process": round(statistics.median(run["throughput_vs_in_process"] for run in runs), 3),
    }
    record = {
        "benchmark": "service_load", "model": _shown(args.model), "texts_file": _shown(args.texts),
        "requests_per_run": args.requests, "clients": args.clients, "warmup_requests": args.warmup,
        "server_threads": args.server_threads, "device": args.device, "beam_size": health["default_beam_size"], "health": health,
        "peer_texts": len(peer_texts), "runs": runs, "summary": summary,
        "load_average_before": load_before, "load_average_after": load_after,
        "provenance": provenance([args.texts, args.model / "model.safetensors"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), record)
    atomic_write_text(args.out.with_suffix(".md"), markdown(record))
    print(markdown(record))
    failed = summary["total_5xx"] or summary["total_connection_errors"] or summary["total_bad_answers"] \
        or summary["server_log_tracebacks"]
    if failed:
        print(f"FAILED: {summary}", file=sys.stderr)
    return 1 if failed else 0


def _median(values) -> float:
    return round(statistics.median(values), 2)


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    for base in (ROOT, SHARED_DATA.parent):
        if base in path.parents:
            return str(path.relative_to(base))
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
