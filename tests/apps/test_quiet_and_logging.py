"""Progress bars and logs of the command line, run as a user runs it (a subprocess).

Off a terminal (stderr captured, as in CI or `2> log`) training draws no progress bar but
still logs each epoch; on a terminal it draws one; `--quiet` silences bars and INFO logs.
Logs go to stderr through `logging`, so stdout holds only the command's output.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "seq2labels"

CONFIG = """\
text: {min_count: 1, max_len: 16}
model: {embedding_dim: 8, encoder_hidden: 8, decoder_hidden: 8, label_embedding_dim: 8}
train: {epochs: 2, batch_size: 16, threads: 1}
"""
# progress is left at its default (true): what silences the bar must be the terminal test or --quiet

BAR = re.compile(r"epoch \d+: +\d+%\|")          # tqdm's "epoch 1:  40%|████  | 2/5 [...]"
INFO_LINE = re.compile(r"^\d\d:\d\d:\d\d INFO ", re.MULTILINE)


def run_cli(argv, *, stderr_tty: bool = False, timeout: float = 300) -> tuple[int, str, str]:
    """`python -m seq2labels ARGV` -> (exit code, stdout, stderr); stderr a pipe or a pseudo-terminal."""
    cmd = [sys.executable, "-m", "seq2labels", *map(str, argv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not stderr_tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns, as a real one
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:  # the terminal's other end, read until the child closes it
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(timeout=30)
        os.close(controller)
    return proc.returncode, stdout.decode("utf-8"), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def data(tmp_path_factory, sample_examples, write_jsonl):
    root = tmp_path_factory.mktemp("quiet")
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    texts = root / "texts.txt"
    texts.write_text("thank you so much\nwhat a mess\nno idea\n", encoding="utf-8")
    return {"root": root, "config": root / "config.yaml", "train": write_jsonl(root / "train.jsonl", sample_examples[0][:96]),
            "texts": texts}


@pytest.fixture(scope="module")
def trained(data):
    """`seq2labels train` with stderr captured (not a terminal) and no --quiet."""
    run = data["root"] / "run"
    result = run_cli(["train", data["config"], "--train", data["train"], "--out", run])
    return {"run": run, "model": run / "model", "result": result}


def test_off_a_terminal_train_logs_each_epoch_but_draws_no_bar(trained):
    code, stdout, stderr = trained["result"]
    assert code == 0, stderr
    assert "\r" not in stderr and not BAR.search(stderr), stderr
    assert re.search(r"INFO seq2labels\.training\.loop: epoch 1/2 .*train_loss=", stderr), stderr
    assert re.search(r"INFO seq2labels\.training\.loop: epoch 2/2 ", stderr), stderr
    # stdout is the command's own report, no log line in it
    assert f"model saved to {trained['model']}" in stdout and not INFO_LINE.search(stdout)


def test_on_a_terminal_train_draws_a_bar_and_quiet_removes_it_and_the_info_logs(data):
    code, _, stderr = run_cli(["train", data["config"], "--train", data["train"], "--out", data["root"] / "tty"],
                              stderr_tty=True)
    assert code == 0, stderr
    assert BAR.search(stderr) and INFO_LINE.search(stderr), stderr  # so the checks below can fail

    code, stdout, stderr = run_cli(["train", data["config"], "--train", data["train"], "--out",
                                    data["root"] / "tty-quiet", "--quiet"], stderr_tty=True)
    assert code == 0, stderr
    assert not BAR.search(stderr) and "%|" not in stderr, stderr
    assert not INFO_LINE.search(stderr) and " INFO " not in stderr, stderr
    assert "model saved to" in stdout  # --quiet keeps the command's output


def test_predict_writes_only_predictions_to_stdout_and_quiet_silences_its_log(trained, data):
    assert trained["result"][0] == 0, trained["result"][2]
    code, stdout, stderr = run_cli(["predict", trained["model"], data["texts"], "--format", "text", "--top-k", "2"])
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]  # every stdout line is a prediction
    assert len(rows) == 3 and all(set(r) == {"labels", "probabilities", "score"} for r in rows)
    assert re.search(r"INFO seq2labels: predicted 3 texts", stderr), stderr

    code, quiet_stdout, quiet_stderr = run_cli(["predict", trained["model"], data["texts"], "--format", "text",
                                                "--top-k", "2", "-q"])
    assert code == 0 and quiet_stderr == "", quiet_stderr
    assert quiet_stdout == stdout


def test_no_print_outside_the_command_line_module():
    """Library code reports through logging (or warnings); only the command modules print command output."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__main__.py" or path.parent == SRC / "apps" / "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []
