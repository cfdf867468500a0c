"""examples/tag_suggestion/README.md, run as written: the blocks marked `# test: run` in a fresh
folder (EPOCHS=1), then the `# test: serve` command on a free port with the `# test: request`
commands sent to it (curl's request through urllib, the Python client as written)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from seq2labels.apps.cli import build_parser, sample_path
from seq2labels.pipeline.generator import load_model
from seq2labels.utils.provenance import sha256

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tag_suggestion"
WALKTHROUGH = EXAMPLE / "README.md"
MODEL = Path("runs/tag_suggestion/model")

pytestmark = pytest.mark.usefixtures("one_thread")


def marked_blocks(markdown: str) -> dict[str, list[str]]:
    """The ```bash blocks whose first line is '# test: KIND', by kind, in order (the marker removed)."""
    blocks: dict[str, list[str]] = {}
    for match in re.finditer(r"^```bash\n(.*?)^```", markdown, re.S | re.M):
        first, _, rest = match.group(1).partition("\n")
        marker = re.fullmatch(r"# test: (\w+)", first.strip())
        if marker:
            blocks.setdefault(marker.group(1), []).append(rest)
    return blocks


def commands(block: str) -> list[str]:
    """One string per command: backslash continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def environment() -> dict[str, str]:
    """This interpreter's `seq2labels` and `python` first on PATH; one thread; one epoch."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "EPOCHS": "1",
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """A fresh folder laid out like the repository root (the example and the shipped sample), with
    the walk-through's `# test: run` blocks run in it as one bash script."""
    root = tmp_path_factory.mktemp("tag_suggestion")
    shutil.copytree(EXAMPLE, root / "examples" / "tag_suggestion")
    (root / "src" / "seq2labels").mkdir(parents=True)
    (root / "src" / "seq2labels" / "samples").symlink_to(Path(sample_path("goemotions_train.jsonl.gz")).parent)
    blocks = marked_blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    script = "\n".join(blocks["run"])
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=root, env=environment(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"walk-through failed:\n{script}\n--- stderr ---\n{proc.stderr[-4000:]}"
    return {"root": root, "blocks": blocks, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture(scope="module")
def model(walkthrough, single_thread):
    with single_thread():
        return load_model(walkthrough["root"] / MODEL)


@pytest.fixture(scope="module")
def texts(walkthrough) -> list[str]:
    return (walkthrough["root"] / "examples/tag_suggestion/texts.txt").read_text(encoding="utf-8").splitlines()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_tag_suggestions(rows: list[dict], labels: list[str], n_texts: int, fewest: int, most: int) -> None:
    assert len(rows) == n_texts
    for row in rows:
        assert fewest <= len(row["labels"]) <= most, row
        assert len(row["probabilities"]) == len(row["labels"]) and len(set(row["labels"])) == len(row["labels"])
        assert set(row["labels"]) <= set(labels), row
        assert all(0.0 < p <= 1.0 for p in row["probabilities"]), row


def same_predictions(rows: list[dict], expected) -> None:
    """Rows (JSON, probabilities rounded to 6 places) equal the model's own predictions."""
    assert [r["labels"] for r in rows] == [p.labels for p in expected]
    for row, pred in zip(rows, expected):
        assert row["probabilities"] == pytest.approx(pred.probabilities, abs=1e-6)


def test_the_walkthrough_trains_a_model_whose_card_names_the_sample(walkthrough, model):
    folder = walkthrough["root"] / MODEL
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "labels.json", "model.safetensors", "vocab.json"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert sha256(sample_path("goemotions_train.jsonl.gz")) in card and "## Limits" in card
    summary = json.loads((walkthrough["root"] / "runs/tag_suggestion/summary.json").read_text(encoding="utf-8"))
    assert summary["epochs_run"] == 1 and summary["test_n_docs"] == 1000  # EPOCHS=1 reached the command
    assert model.config.decode.beam_size == 5 and model.config.text.max_len == 48  # the example's config


def test_predict_writes_ordered_tags_with_probabilities_as_the_model_predicts(walkthrough, model, texts):
    labels = list(model.label_vocab.labels)
    rows = read_jsonl(walkthrough["root"] / "runs/tag_suggestion/suggestions.jsonl")
    assert_tag_suggestions(rows, labels, len(texts), fewest=1, most=3)  # config: min_labels 1; --top-k 3
    same_predictions(rows, model.predict(texts, max_labels=3))
    # the `paste` line shows each text beside its suggestions
    shown = [line.split("\t") for line in walkthrough["stdout"].splitlines() if "\t" in line]
    assert [(text, json.loads(row)) for text, row in shown] == list(zip(texts, rows))

    forced = read_jsonl(walkthrough["root"] / "runs/tag_suggestion/three_each.jsonl")
    assert_tag_suggestions(forced, labels, len(texts), fewest=3, most=3)
    same_predictions(forced, model.predict(texts, max_labels=3, min_labels=3))


# ---- serving ------------------------------------------------------------------------------

def serve_available() -> bool:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "serve" in sub.choices and all(importlib.util.find_spec(m) for m in ("seq2labels.apps.serve", "fastapi",
                                                                               "uvicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(command: str, cwd: Path, port: int, log: Path):
    """The walk-through's `seq2labels serve ...` with its --port replaced, until healthy; stopped after."""
    argv = shlex.split(command)
    assert argv[:2] == ["seq2labels", "serve"] and "--port" in argv, command
    argv[argv.index("--port") + 1] = str(port)
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(encoding='utf-8')}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after 180 s:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def send_curl(command: str, port: int) -> tuple[dict, dict]:
    """curl's request (-X, -H, -d, URL) sent with urllib: (request JSON, response JSON)."""
    argv = shlex.split(command)
    method, headers, data, url = "GET", {}, None, None
    i = 1
    while i < len(argv):
        flag = argv[i]
        if flag in ("-X", "-H", "-d"):
            value = argv[i + 1]
            if flag == "-X":
                method = value
            elif flag == "-H":
                name, _, header = value.partition(":")
                headers[name.strip()] = header.strip()
            else:
                data = value
            i += 2
            continue
        if not flag.startswith("-"):
            url = flag
        i += 1
    assert url is not None and "localhost:8000" in url, command
    url = ("" if url.startswith("http") else "http://") + url.replace("localhost:8000", f"127.0.0.1:{port}")
    request = urllib.request.Request(url, data=data.encode("utf-8") if data else None, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(data or "null"), json.load(response)


def test_the_service_answers_the_walkthrough_requests(walkthrough, model, tmp_path):
    if not serve_available():
        pytest.skip("serve command not available")
    serve_cmds = commands(walkthrough["blocks"]["serve"][0])
    request_cmds = commands("\n".join(walkthrough["blocks"]["request"]))
    assert len(serve_cmds) == 1 and any(c.startswith("curl ") for c in request_cmds)
    port = free_port()
    ran_client = False
    with running(serve_cmds[0], walkthrough["root"], port, tmp_path / "server.log"):
        for command in request_cmds:
            if command.startswith("curl "):
                sent, answer = send_curl(command, port)
                assert answer["beam_size"] == 5
                assert_tag_suggestions(answer["predictions"], list(model.label_vocab.labels), len(sent["texts"]),
                                       fewest=1, most=sent["top_k"])
                same_predictions(answer["predictions"], model.predict(sent["texts"], max_labels=sent["top_k"]))
                continue
            proc = subprocess.run(["bash", "-c", command.replace("localhost:8000", f"127.0.0.1:{port}")],
                                  cwd=walkthrough["root"], env=environment(), capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stderr
            if "suggest.py" in command:
                ran_client = True
                texts = [t for t in shlex.split(command) if not t.startswith("-") and " " in t]
                expected = model.predict(texts, max_labels=3)
                lines = iter(proc.stdout.splitlines())
                for text, pred in zip(texts, expected):
                    assert next(lines) == text
                    for rank, (tag, p) in enumerate(zip(pred.labels, pred.probabilities), 1):
                        assert next(lines).split() == [f"{rank}.", tag, f"{p:.2f}"]
                assert next(lines, None) is None
    assert ran_client


def test_the_client_says_where_it_could_not_connect():
    proc = subprocess.run([sys.executable, str(EXAMPLE / "suggest.py"), "--url", f"http://127.0.0.1:{free_port()}",
                           "hello"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "cannot reach" in proc.stderr and "seq2labels serve" in proc.stderr
