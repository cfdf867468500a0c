"""The command line end to end on a tiny run: train, evaluate, predict, resume, and its errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from seq2labels.apps.cli import build_parser, main, resolve_train_config
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.generator import LabelGenerator

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

CONFIG = """\
text:
  min_count: 1
  max_len: 24
model:
  embedding_dim: 16
  encoder_hidden: 16
  decoder_hidden: 16
  label_embedding_dim: 16
train:
  epochs: 5
  batch_size: 32
  lr: 0.001
  progress: false
decode:
  max_labels: 4
"""

MODEL_FILES = ["README.md", "config.json", "labels.json", "model.safetensors", "vocab.json"]


def run_main(argv) -> tuple[int, str, str]:
    """main(argv) in this process: (exit code, stdout, stderr); torch threads put back after."""
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_examples, write_jsonl):
    root = tmp_path_factory.mktemp("cli")
    train, test = sample_examples
    texts = root / "texts.txt"
    texts.write_text("I love this so much!\n\nthis is awful\nwhat do you mean?\n", encoding="utf-8")
    bad = root / "bad.jsonl"
    bad.write_text('{"text": "fine", "labels": ["joy"]}\n{"text": "ok", "labels": []}\n{"text": oops}\n',
                   encoding="utf-8")
    config = root / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return {"root": root, "train": write_jsonl(root / "train.jsonl", train[:160]),
            "test": write_jsonl(root / "test.jsonl", test[:40]), "texts": texts, "bad": bad, "config": config}


@pytest.fixture(scope="module")
def run(files):
    """One training run: YAML config + flags + --set, 1 epoch, with a test file."""
    out = files["root"] / "run"
    code, stdout, stderr = run_main(["train", files["config"], "--train", files["train"], "--test", files["test"],
                                     "--epochs", 1, "--threads", 1, "--out", out, "-q", "--set", "train.lr=0.005"])
    assert code == 0, stderr
    return {"dir": out, "model": out / "model", "stdout": stdout}


# ---- train ---------------------------------------------------------------------------------

def test_train_writes_a_run_folder(run):
    folder = run["dir"]
    assert {"metrics.csv", "config.yaml", "model", "summary.json", "checkpoint.pt"} <= set(os.listdir(folder))
    assert sorted(os.listdir(run["model"])) == MODEL_FILES
    rows = read_csv(folder / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1"]
    assert "micro_f1" in rows[0] and "train_loss" in rows[0]
    saved = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 1              # the flag beat the YAML file's 5
    assert saved["train"]["lr"] == 0.005              # --set
    assert saved["text"]["max_len"] == 24             # from the YAML file
    assert saved["train"]["batch_size"] == 32
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["epochs_run"] == 1 and "test_micro_f1" in summary and "valid_micro_f1" in summary
    assert f"model saved to {run['model']}" in run["stdout"]
    assert "test_micro_f1" in run["stdout"]
    assert load_model(run["model"]).config.decode.max_labels == 4


def test_flags_override_yaml_and_set_overrides_both(files):
    args = build_parser().parse_args(["train", str(files["config"]), "--batch-size", "8", "--lr", "1e-5",
                                      "--no-global-embedding", "--set", "train.batch_size=4"])
    cfg = resolve_train_config(args)
    assert cfg.train.batch_size == 4                  # --set > flag > YAML
    assert cfg.train.lr == 1e-5                       # json.dumps(1e-05) is not a YAML 1.1 float
    assert cfg.model.global_embedding is False
    assert cfg.train.epochs == 5 and cfg.text.max_len == 24
    assert resolve_train_config(build_parser().parse_args(["train", str(files["config"]), "-q"])).train.progress is False


def test_resume_continues_a_run_exactly(files):
    common = ["--train", files["train"], "--threads", 1, "-q"]
    first = files["root"] / "resumed"
    assert run_main(["train", files["config"], *common, "--epochs", 1, "--out", first])[0] == 0
    code, _, stderr = run_main(["train", "--resume", first, "--epochs", 2, "-q", "--threads", 1])
    assert code == 0, stderr
    rows = read_csv(first / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the same as never stopping
    straight = files["root"] / "straight"
    assert run_main(["train", files["config"], *common, "--epochs", 2, "--out", straight])[0] == 0
    a, b = load_file(str(first / "model" / "model.safetensors")), load_file(str(straight / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for r, s in zip(rows, read_csv(straight / "metrics.csv"), strict=True):
        assert r["train_loss"] == s["train_loss"] and r["micro_f1"] == s["micro_f1"]


# ---- evaluate ------------------------------------------------------------------------------

def test_evaluate_prints_metrics_and_writes_json(run, files):
    out = files["root"] / "metrics.json"
    code, stdout, stderr = run_main(["evaluate", run["model"], files["test"], "--output", out, "-q"])
    assert code == 0, stderr
    assert "micro_f1" in stdout and "macro_f1" in stdout
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert metrics["n_docs"] == 40 and metrics["beam_size"] == 5   # the default decoding: beam 5
    assert 0.0 <= metrics["micro_f1"] <= 1.0


def test_evaluate_uses_beam_size_and_max_labels(run, files, monkeypatch):
    seen = {}
    real = LabelGenerator.decode_encoded

    def spy(self, encoded, **kwargs):
        seen.update(kwargs)
        return real(self, encoded, **kwargs)

    monkeypatch.setattr(LabelGenerator, "decode_encoded", spy)
    code, _, stderr = run_main(["evaluate", run["model"], files["test"], "--beam-size", 2, "--max-labels", 1, "-q"])
    assert code == 0, stderr
    assert seen["beam_size"] == 2 and seen["max_labels"] == 1


# ---- predict -------------------------------------------------------------------------------

def test_predict_writes_json_lines(run, files):
    out = files["root"] / "pred.jsonl"
    code, _, stderr = run_main(["predict", run["model"], files["test"], "-o", out, "-q"])
    assert code == 0, stderr
    rows = read_jsonl(out)
    assert len(rows) == 40
    for row in rows:
        assert set(row) == {"labels", "probabilities", "score"}
        assert len(row["labels"]) == len(row["probabilities"]) <= 4     # the saved decode.max_labels
        assert len(set(row["labels"])) == len(row["labels"])
        assert row["score"] <= 0


def test_predict_top_k_and_beam_size(run, files):
    out = files["root"] / "top1.jsonl"
    assert run_main(["predict", run["model"], files["test"], "-o", out, "--top-k", 1, "-q"])[0] == 0
    assert all(len(r["labels"]) <= 1 for r in read_jsonl(out))
    assert run_main(["predict", run["model"], files["test"], "-o", out, "--top-k", 1, "--min-labels", 1, "-q"])[0] == 0
    assert all(len(r["labels"]) == 1 for r in read_jsonl(out))
    beam = files["root"] / "beam.jsonl"
    code, _, stderr = run_main(["predict", run["model"], files["test"], "-o", beam, "--beam-size", 3,
                                "--batch-size", 7, "--chunk-size", 16, "-q"])
    assert code == 0, stderr
    texts = [json.loads(line)["text"] for line in files["test"].read_text(encoding="utf-8").splitlines()]
    expected = [p.to_json() for p in load_model(run["model"]).predict(texts, beam_size=3)]
    got = read_jsonl(beam)
    assert [r["labels"] for r in got] == [e["labels"] for e in expected]
    for r, e in zip(got, expected, strict=True):          # other batches: float rounding may differ
        assert r["probabilities"] == pytest.approx(e["probabilities"], abs=1e-5)
        assert r["score"] == pytest.approx(e["score"], abs=1e-4)


@pytest.mark.parametrize("fmt", [["--format", "text"], []])
def test_predict_plain_text_one_text_per_line(run, files, fmt):
    code, stdout, stderr = run_main(["predict", run["model"], files["texts"], *fmt, "--min-labels", 1, "-q"])
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    lines = files["texts"].read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(lines) == 4                                  # the empty line too
    expected = [p.to_json() for p in load_model(run["model"]).predict(lines, min_labels=1)]
    assert rows == expected


# ---- help ----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "demo"])
def test_help_for_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: seq2labels {command}" in capsys.readouterr().out


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "seq2labels", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("train", "evaluate", "predict", "demo"):
        assert command in proc.stdout


# ---- errors: exit 2, one line, no traceback -------------------------------------------------

def test_bad_data_file_is_one_line_naming_file_and_line(files, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seq2labels", "train", "--train", str(files["bad"]), "-q",
                           "--out", str(tmp_path / "never")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("seq2labels train: error: ")
    assert f"{files['bad']}:3:" in lines[0] and "invalid JSON" in lines[0]


def test_bad_data_file_for_predict_and_evaluate(run, files):
    for command in ("predict", "evaluate"):
        code, _, stderr = run_main([command, run["model"], files["bad"], "-q"])
        assert code == 2
        assert f"{files['bad']}:3:" in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize("argv, needle", [
    (["--set", "train.epoch=3"], "train.epoch"),
    (["--set", "model.hidden=3"], "model.hidden"),
    (["--set", "trainer.lr=3"], "'trainer'"),
    (["--set", "model.rnn_type=rnn"], "model.rnn_type"),
    (["--set", "train.loss=hinge"], "train.loss"),
    (["--set", "train.epochs"], "section.key=value"),
])
def test_config_errors_exit_2_naming_the_key(files, argv, needle, tmp_path):
    code, _, stderr = run_main(["train", files["config"], "--train", files["train"], "--out", tmp_path / "x",
                                "-q", *argv])
    assert code == 2
    assert needle in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()                                 # failed before any work


def test_unknown_key_in_the_yaml_file_exits_2(files, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("train:\n  epoch: 3\n", encoding="utf-8")
    code, _, stderr = run_main(["train", config, "--train", files["train"], "-q"])
    assert code == 2 and "train.epoch" in stderr and str(config) in stderr


def test_training_data_without_labels_exits_2(tmp_path):
    data = tmp_path / "nolabels.jsonl"
    data.write_text("".join(json.dumps({"text": f"t {i}", "labels": []}) + "\n" for i in range(10)), encoding="utf-8")
    code, _, stderr = run_main(["train", "--train", data, "--out", tmp_path / "r", "-q", "--threads", 1])
    assert code == 2 and "no labels found" in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize("argv, needle", [
    (["--beam-size", "0"], "--beam-size"),
    (["--top-k", "0"], "--top-k"),
    (["--top-k", "1", "--min-labels", "2"], "--min-labels"),
    (["--min-labels", "-1"], "--min-labels"),
])
def test_bad_decoding_flags_exit_2(run, files, argv, needle):
    code, _, stderr = run_main(["predict", run["model"], files["texts"], "-q", *argv])
    assert code == 2 and needle in stderr and "Traceback" not in stderr


def test_missing_model_or_input_exits_2(run, files, tmp_path):
    code, _, stderr = run_main(["predict", tmp_path / "no-model", files["texts"], "-q"])
    assert code == 2 and "no-model" in stderr
    code, _, stderr = run_main(["evaluate", run["model"], tmp_path / "missing.jsonl", "-q"])
    assert code == 2 and "missing.jsonl" in stderr and "file not found" in stderr
    code, _, stderr = run_main(["train", "--resume", tmp_path / "no-run", "-q"])
    assert code == 2 and "config file not found" in stderr
