"""A training process killed with SIGKILL mid-epoch resumes to the very weights of an uninterrupted run."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CONFIG = """\
text: {min_count: 1, max_len: 48}
model: {embedding_dim: 24, encoder_hidden: 24, decoder_hidden: 24, label_embedding_dim: 16}
train: {epochs: 6, batch_size: 16, lr: 0.002, patience: 10, seed: 7, threads: 1, progress: false}
decode: {max_labels: 4}
"""


def _write_sample(path: Path, n: int) -> None:
    sample = resources.files("seq2labels") / "samples" / "goemotions_train.jsonl.gz"
    with gzip.open(sample, "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == n:
                break
            dst.write(line)


def _train(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "seq2labels", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _epochs_done(run: Path) -> int:
    try:
        with open(run / "metrics.csv", newline="", encoding="utf-8") as f:
            return len(list(csv.DictReader(f)))
    except FileNotFoundError:
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path):
    data = tmp_path / "train.jsonl"
    _write_sample(data, 1200)
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    common = ["config.yaml", "--train", str(data)]

    straight = _train(common + ["--out", "straight"], tmp_path)
    killed = _train(common + ["--out", "killed"], tmp_path)
    deadline = time.monotonic() + 240
    while _epochs_done(tmp_path / "killed") < 2 and time.monotonic() < deadline:
        assert killed.poll() is None, killed.stdout.read().decode()
        time.sleep(0.01)
    assert _epochs_done(tmp_path / "killed") == 2, "training never finished epoch 2"
    time.sleep(0.1)   # into epoch 3 (its checkpoint is written); an epoch lasts well over 0.1 s even on a quiet machine
    assert killed.poll() is None, "training ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists()

    resumed = _train(["--resume", "killed"], tmp_path)
    out_resumed = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, out_resumed
    out_straight = straight.communicate(timeout=300)[0].decode()
    assert straight.returncode == 0, out_straight

    a = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    rows_b = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()
    assert len(rows_b) == 7                                            # header + 6 epochs, none repeated
    strip_time = lambda rows: [",".join(c for i, c in enumerate(r.split(",")) if i != 3) for r in rows]  # noqa: E731
    assert strip_time(rows_a) == strip_time(rows_b)
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["epochs_run"] == 6
