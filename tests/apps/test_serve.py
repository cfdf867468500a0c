"""The HTTP service for real: `seq2labels serve` in its own process, spoken to over loopback HTTP.

Predictions must equal LabelGenerator.predict in this process on the same model folder; every limit
answers its status with a message naming the limit; malformed requests of every kind get a 4xx with
a JSON message, and the server log never shows a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from seq2labels.apps.cli import build_parser, main  # noqa: E402
from seq2labels.pipeline.files import FORMAT_VERSION
from seq2labels.pipeline.generator import load_model
from seq2labels.apps.serve import (  # noqa: E402
    InferenceRunner,
    InferenceTimeout,
    MissingDependencyError,
    ServeSettings,
    _import_fastapi,
    _model_lock,
    create_app,
)

pytestmark = pytest.mark.usefixtures("one_thread")

JSON = {"content-type": "application/json"}
BAD_LOG_LINES = ("Traceback", "Exception in ASGI application", " 500 ")


# ---- a real server --------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    proc: subprocess.Popen | None
    log: Path | None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, log: Path | None = None, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text() if log else ''}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"server at {url} not healthy after {seconds} s")


@contextlib.contextmanager
def serve_process(model_dir: Path, log: Path, *flags: str):
    """`seq2labels serve MODEL --port P ...` as a subprocess (no --host: the default bind is tested)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "seq2labels", "serve", str(model_dir), "--port", str(port),
                                 "--threads", "1", *flags], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_thread(app):
    """A uvicorn.Server in a thread of this process, for settings a test wants to pin exactly."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, seconds=30)
        yield Server(url, None, None)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory) -> Path:
    return tiny.generator.save(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def reference(model_dir, single_thread):
    """The same model folder loaded in this process: what the server must reproduce."""
    with single_thread():
        return load_model(model_dir)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    with serve_process(model_dir, tmp_path_factory.mktemp("serve-log") / "server.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def expected(reference, texts, **kwargs) -> list[dict]:
    return [p.to_json() for p in reference.predict(texts, batch_size=64, **kwargs)]


def assert_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word in detail, detail
    return detail


# ---- predictions ----------------------------------------------------------------------------

def test_predict_equals_label_generator_predict_in_process(client, reference, test_texts):
    response = client.post("/predict", json={"texts": test_texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["beam_size"] == reference.config.decode.beam_size
    assert body["model"].endswith("model")
    assert body["predictions"] == expected(reference, test_texts)
    # the tiny model often stops at once; min_labels=1 makes it name labels to compare
    forced = client.post("/predict", json={"texts": test_texts, "min_labels": 1}).json()["predictions"]
    assert forced == expected(reference, test_texts, min_labels=1)
    assert all(p["labels"] for p in forced)


@pytest.mark.parametrize("beam_size,top_k,min_labels", [(1, None, 1), (3, 2, 1), (4, 1, None), (2, 4, 3)])
def test_beam_size_top_k_and_min_labels_decode_as_predict_does(client, reference, test_texts, beam_size, top_k,
                                                                min_labels):
    texts = test_texts[:20]
    response = client.post("/predict", json={"texts": texts, "beam_size": beam_size, "top_k": top_k,
                                             "min_labels": min_labels})
    assert response.status_code == 200, response.text
    assert response.json()["beam_size"] == beam_size
    predictions = response.json()["predictions"]
    assert predictions == expected(reference, texts, beam_size=beam_size, max_labels=top_k, min_labels=min_labels)
    lengths = [len(p["labels"]) for p in predictions]
    assert max(lengths) <= (top_k or reference.config.decode.max_labels)
    assert min(lengths) >= (min_labels or 0)


def test_top_k_above_the_label_count_means_every_label(client, reference, test_texts):
    n = reference.label_vocab.num_labels
    response = client.post("/predict", json={"texts": test_texts[:5], "top_k": 1000, "beam_size": 2, "min_labels": n})
    assert response.json()["predictions"] == expected(reference, test_texts[:5], beam_size=2, max_labels=n,
                                                      min_labels=n)
    assert all(sorted(p["labels"]) == sorted(reference.label_vocab.labels) for p in response.json()["predictions"])


def test_threshold_drops_labels_below_it_and_keeps_the_order(client, test_texts):
    request = {"texts": test_texts, "top_k": 6, "min_labels": 3}
    plain = client.post("/predict", json=request).json()["predictions"]
    probs = sorted(set(p for pred in plain for p in pred["probabilities"]))
    # near the median, halfway between two shown (6-decimal) probabilities, so rounding cannot tip a label
    m = next(i for i in range(len(probs) // 2, len(probs)) if probs[i] - probs[i - 1] > 1e-5)
    threshold = (probs[m - 1] + probs[m]) / 2
    kept = client.post("/predict", json={**request, "threshold": threshold}).json()
    n_dropped = 0
    for before, after in zip(plain, kept["predictions"]):
        pairs = [(lab, p) for lab, p in zip(before["labels"], before["probabilities"]) if p >= threshold]
        assert after["labels"] == [lab for lab, _ in pairs]
        assert after["probabilities"] == [p for _, p in pairs]
        assert after["score"] == before["score"]  # the sequence's score, not the kept labels'
        n_dropped += len(before["labels"]) - len(after["labels"])
    assert n_dropped > 0 and sum(len(p["labels"]) for p in kept["predictions"]) > 0
    everything = client.post("/predict", json={**request, "threshold": 0.0}).json()
    assert everything["predictions"] == plain


def test_empty_list_of_texts_gives_no_predictions(client):
    response = client.post("/predict", json={"texts": []})
    assert response.status_code == 200 and response.json()["predictions"] == []


# ---- health, labels, docs -------------------------------------------------------------------

def test_health_names_model_format_and_label_count(client, reference):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["format"] == "seq2labels" and health["format_version"] == FORMAT_VERSION
    assert health["labels"] == reference.label_vocab.num_labels
    assert health["limits"] == {"max_texts": 64, "max_chars": 20000, "max_body_bytes": 1000000, "timeout_s": 10.0}


def test_labels_lists_every_label_in_training_order(client, reference):
    assert client.get("/labels").json() == {"labels": reference.label_vocab.labels}


def test_docs_and_openapi_show_the_limits(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/labels"} <= set(spec["paths"])
    texts = spec["components"]["schemas"]["PredictRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 64 and texts["items"]["maxLength"] == 20000


def test_default_bind_is_loopback_only(server):
    import psutil

    assert build_parser().parse_args(["serve", "m"]).host == "127.0.0.1"
    listening = [c.laddr for c in psutil.Process(server.proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


# ---- limits ---------------------------------------------------------------------------------

def test_too_many_texts_is_422_naming_the_limit(client):
    assert client.post("/predict", json={"texts": ["ok"] * 64}).status_code == 200
    assert_error(client.post("/predict", json={"texts": ["ok"] * 65}), 422, "at most 64", "--max-texts", "65")


def test_too_long_text_is_422_naming_the_limit(client):
    assert client.post("/predict", json={"texts": ["a" * 20000]}).status_code == 200
    detail = assert_error(client.post("/predict", json={"texts": ["fine", "b" * 20001]}), 422,
                          "20000 characters", "--max-chars")
    assert detail.startswith("texts[1]")


def test_body_over_the_limit_is_413_by_content_length(client):
    body = json.dumps({"texts": ["word " * 50_000] * 5}).encode()  # 1.25 MB
    response = client.post("/predict", content=body, headers=JSON)
    assert_error(response, 413, "1000000 bytes", "--max-body-bytes")
    assert response.request.headers["content-length"] == str(len(body))


def test_chunked_body_is_counted_as_it_streams(client):
    def chunks(total: int, piece: int = 65536):
        head, tail = b'{"texts": ["', b'"]}'
        yield head
        for start in range(0, total - len(head) - len(tail), piece):
            yield b"x" * min(piece, total - len(head) - len(tail) - start)
        yield tail

    big = client.post("/predict", content=chunks(1_200_000), headers=JSON)
    assert "content-length" not in big.request.headers
    assert big.request.headers["transfer-encoding"] == "chunked"
    assert_error(big, 413, "1000000 bytes")
    small = client.post("/predict", content=chunks(15_000), headers=JSON)  # a chunked body within limits works
    assert small.status_code == 200 and len(small.json()["predictions"]) == 1


def test_inference_past_the_timeout_is_503_and_the_server_recovers(reference):
    app = create_app(reference, ServeSettings(timeout=0.05))
    with serve_thread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        with _model_lock(reference):  # the model is busy: no request can finish in time, however fast
            for _ in range(3):
                response = c.post("/predict", json={"texts": ["a text", "another one"]})
                assert_error(response, 503, "timeout")
                assert response.headers["retry-after"] == "1"
        assert c.get("/health").status_code == 200


def test_runner_serves_the_next_request_after_an_abandoned_one(reference, test_texts):
    async def scenario():
        runner = InferenceRunner(reference, batch_size=64)
        try:
            with _model_lock(reference), pytest.raises(InferenceTimeout, match="timeout"):
                await runner.predict(test_texts, beam_size=2, max_labels=None, timeout=0.05)
            return await runner.predict(test_texts, beam_size=2, max_labels=None, timeout=60)
        finally:
            runner.close()

    got = asyncio.run(scenario())
    assert [p.to_json() for p in got] == expected(reference, test_texts, beam_size=2)


# ---- malformed requests ---------------------------------------------------------------------

MALFORMED = {
    "invalid JSON": (b'{"texts": ["a"', JSON, 400, "invalid JSON"),
    "invalid UTF-8": (b'{"texts": ["\xff\xfe"]}', JSON, 400, "UTF-8"),
    "nested too deeply": (b"[" * 200_000 + b"]" * 200_000, JSON, 400, "nested"),
    "text/plain": (b'{"texts": ["a"]}', {"content-type": "text/plain"}, 415, "application/json"),
    "form encoded": (b"texts=a", {"content-type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    "no content type": (b'{"texts": ["a"]}', {}, 415, "application/json"),
    "empty body": (b"", JSON, 422, "JSON object"),
    "JSON null": (b"null", JSON, 422, "JSON object"),
    "JSON list": (b'["a", "b"]', JSON, 422, "JSON object"),
    "no texts": (b'{"text": ["a"]}', JSON, 422, "texts"),
    "texts a string": (b'{"texts": "a"}', JSON, 422, "texts"),
    "texts a number": (b'{"texts": 5}', JSON, 422, "texts"),
    "texts null": (b'{"texts": null}', JSON, 422, "texts"),
    "a null text": (b'{"texts": ["a", null]}', JSON, 422, "texts[1]"),
    "number texts": (b'{"texts": [1, 2.5]}', JSON, 422, "texts[0]"),
    "nested texts": (b'{"texts": [["a"]]}', JSON, 422, "texts[0]"),
    "lone surrogate": (b'{"texts": ["\\ud800"]}', JSON, 422, "Unicode"),
    "huge top_k": (b'{"texts": ["a"], "top_k": 1' + b"0" * 400 + b"}", JSON, 422, "top_k"),
    "zero top_k": (b'{"texts": ["a"], "top_k": 0}', JSON, 422, "top_k"),
    "string top_k": (b'{"texts": ["a"], "top_k": "3"}', JSON, 422, "top_k"),
    "float top_k": (b'{"texts": ["a"], "top_k": 2.5}', JSON, 422, "top_k"),
    "negative beam": (b'{"texts": ["a"], "beam_size": -1}', JSON, 422, "beam_size"),
    "huge beam": (b'{"texts": ["a"], "beam_size": 33}', JSON, 422, "beam_size"),
    "bool beam": (b'{"texts": ["a"], "beam_size": true}', JSON, 422, "beam_size"),
    "threshold above 1": (b'{"texts": ["a"], "threshold": 1.5}', JSON, 422, "threshold"),
    "negative threshold": (b'{"texts": ["a"], "threshold": -0.1}', JSON, 422, "threshold"),
    "NaN threshold": (b'{"texts": ["a"], "threshold": NaN}', JSON, 422, "threshold"),
    "infinite threshold": (b'{"texts": ["a"], "threshold": 1e999}', JSON, 422, "threshold"),
    "string threshold": (b'{"texts": ["a"], "threshold": "0.5"}', JSON, 422, "threshold"),
    "negative min_labels": (b'{"texts": ["a"], "min_labels": -1}', JSON, 422, "min_labels"),
    "min_labels over top_k": (b'{"texts": ["a"], "min_labels": 3, "top_k": 2}', JSON, 422, "must not exceed top_k (2)"),
    "min_labels over labels": (b'{"texts": ["a"], "min_labels": 999, "top_k": 1000}', JSON, 422, "labels"),
    "unknown field": (b'{"texts": ["a"], "topk": 3}', JSON, 422, "topk"),
    "unknown field with a lone surrogate": (b'{"texts": ["a"], "\\ud800x": 3}', JSON, 422, "Unicode"),
    "unknown field, huge name": (b'{"texts": ["a"], "' + b"k" * 100_000 + b'": 3}', JSON, 422, "kkk..."),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request_gets_a_4xx_json_message(client, name):
    body, headers, status, word = MALFORMED[name]
    assert_error(client.post("/predict", content=body, headers=headers), status, word)


@pytest.mark.parametrize("error,status,words", [
    (ValueError("text 0 is odd"), 422, ["cannot label these texts", "text 0 is odd"]),  # about the input
    (RuntimeError("boom"), 500, ["internal error (RuntimeError)"]),                     # a bug: no trace sent
])
def test_errors_inside_predict_are_4xx_for_input_500_only_for_bugs(reference, monkeypatch, error, status, words):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(reference, "predict", broken)
    with serve_thread(create_app(reference)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        detail = assert_error(c.post("/predict", json={"texts": ["x"]}), status, *words)
        assert "Traceback" not in detail
        assert c.get("/health").status_code == 200


def test_wrong_method_and_path_are_4xx(client):
    assert_error(client.get("/predict"), 405)
    assert_error(client.post("/nope", json={}), 404)


def test_server_stays_healthy_and_logs_no_traceback(client, server):
    # runs after the tests above in file order: every bad request so far was answered without a 500
    assert client.get("/health").status_code == 200
    log = server.log_text()
    assert "Uvicorn running on http://127.0.0.1:" in log
    for bad in BAD_LOG_LINES:
        assert bad not in log, log[-3000:]


# ---- the command line -----------------------------------------------------------------------

@pytest.mark.parametrize("flags,words", [
    (["--max-texts", "0"], ["--max-texts", "positive"]),
    (["--timeout", "-1"], ["--timeout"]),
    (["--beam-size", "99"], ["--beam-size", "1..32"]),
    (["--device", "nonsense"], ["--device"]),
])
def test_serve_flag_errors_are_one_line(model_dir, capsys, flags, words):
    assert main(["serve", str(model_dir), "--port", "1", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seq2labels serve: error:") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err


def test_serve_missing_model_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nope"), "--port", "1"]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_missing_fastapi_names_the_serve_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"seq2labels\[serve\]"):
        _import_fastapi()
