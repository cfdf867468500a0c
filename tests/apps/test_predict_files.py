"""Sharded predict: many files, several processes, one output in input order."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seq2labels.apps.cli import main
from seq2labels.apps.predict_files import merge_parts


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory) -> Path:
    return tiny.generator.save(tmp_path_factory.mktemp("predict") / "model")


@pytest.fixture(scope="module")
def inputs(tiny, tmp_path_factory) -> list[Path]:
    """Three inputs of different sizes and formats: JSON Lines, plain text (with an empty line), gzip."""
    folder = tmp_path_factory.mktemp("inputs")
    texts = [ex.text for ex in tiny.test_examples]
    first = folder / "a.jsonl"
    first.write_text("".join(json.dumps({"text": t, "labels": []}) + "\n" for t in texts[:25]), encoding="utf-8")
    second = folder / "b.txt"
    second.write_text("\n".join([*texts[25:30], "", *texts[30:35]]) + "\n", encoding="utf-8")
    third = folder / "c.jsonl.gz"
    with gzip.open(third, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t, "labels": ["x"]}) + "\n" for t in texts[35:52])
    return [first, second, third]


@pytest.fixture(scope="module")
def expected(model_dir, inputs, tmp_path_factory) -> str:
    """One process, one file at a time (the unchanged single-file path), concatenated."""
    folder = tmp_path_factory.mktemp("expected")
    parts = []
    for i, path in enumerate(inputs):
        out = folder / f"{i}.jsonl"
        assert main(["predict", str(model_dir), str(path), "--output", str(out), "-q"]) == 0
        parts.append(out.read_text(encoding="utf-8"))
    text = "".join(parts)
    assert len(text.splitlines()) == 25 + 11 + 17
    return text


def test_merge_interleaves_chunks_back_in_order(tmp_path):
    lines = [f"{i}\n" for i in range(7)]
    p0, p1 = tmp_path / "p0", tmp_path / "p1"
    p0.write_text("".join(lines[0:2] + lines[4:6]))
    p1.write_text("".join(lines[2:4] + lines[6:7]))
    out = io.StringIO()
    assert merge_parts([p0, p1], [2, 2, 2, 1], out) == 7
    assert out.getvalue() == "".join(lines)
    with pytest.raises(RuntimeError, match="p1 ends inside chunk 3"):  # a part too short
        merge_parts([p0, p1], [2, 2, 2, 2], io.StringIO())
    p0.write_text("".join(lines[0:2] + lines[4:6]) + "stray\n")      # a line beyond its share
    with pytest.raises(RuntimeError, match="do not interleave: lines left in .*p0"):
        merge_parts([p0, p1], [2, 2, 2, 1], io.StringIO())


def test_several_files_in_one_process_match_file_by_file(model_dir, inputs, expected, tmp_path, one_thread):
    out = tmp_path / "all.jsonl"
    assert main(["predict", str(model_dir), *map(str, inputs), "--output", str(out), "--chunk-size", "7", "-q"]) == 0
    assert_same_predictions(out.read_text(encoding="utf-8"), expected)


def assert_same_predictions(actual: str, expected: str) -> None:
    """Same texts in the same order with the same labels; scores may differ in the last printed digit
    across processes (oneDNN/MKL kernels can round differently with another heap layout)."""
    got, want = actual.splitlines(), expected.splitlines()
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(map(json.loads, got), map(json.loads, want))):
        assert a["labels"] == b["labels"], i
        assert a["score"] == pytest.approx(b["score"], abs=1e-5), i
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5), i


def test_two_processes_give_the_single_process_output_in_order(model_dir, inputs, expected, tmp_path):
    out = tmp_path / "sharded.jsonl"
    code = main(["predict", str(model_dir), *map(str, inputs), "--output", str(out), "--processes", "2",
                 "--chunk-size", "7", "-q"])
    assert code == 0
    assert_same_predictions(out.read_text(encoding="utf-8"), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharded.jsonl"]   # parts cleaned up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_give_the_same_output(model_dir, inputs, expected, tmp_path):
    out = tmp_path / "torchrun.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(_free_port()), "-m", "seq2labels", "predict", str(model_dir),
                           *map(str, inputs), "--output", str(out), "--chunk-size", "5", "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_predictions(out.read_text(encoding="utf-8"), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torchrun.jsonl"]


def test_a_missing_input_fails_before_any_work(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    code = main(["predict", str(model_dir), str(inputs[0]), str(tmp_path / "nope.jsonl"), "--output", str(out),
                 "--processes", "2"])
    assert code == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err
    assert not out.exists()
