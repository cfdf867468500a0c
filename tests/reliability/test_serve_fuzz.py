"""Fuzzing POST /predict over HTTP: whatever a client sends, the service answers 2xx or 4xx, never 5xx.

A real `seq2labels serve` process (max_chars raised to 200,000) gets random Unicode texts (surrogates
escaped in JSON or sent raw, control characters, NUL, right-to-left script, emoji), random JSON
shapes, random option values and random bytes. A well-formed request must get one prediction per text;
anything else must get a 4xx with a JSON message. Afterwards the server is healthy and its log holds
no traceback. A 100,000-character text is accepted with the raised limit and refused (422) at the
default one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RAISED_MAX_CHARS = 200_000
JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(model_dir: Path, log: Path, *flags: str):
    """`seq2labels serve` as a subprocess on a free loopback port; yields (base url, process)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "seq2labels", "serve", str(model_dir), "--port", str(port),
                                 "--threads", "1", *flags], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("server not healthy after 90 s")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory) -> Path:
    return tiny.generator.save(tmp_path_factory.mktemp("fuzz") / "model")


@pytest.fixture(scope="module")
def raised(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz-log") / "raised.log"
    with serve_process(model_dir, log, "--max-chars", str(RAISED_MAX_CHARS)) as (url, proc), \
            httpx.Client(base_url=url, timeout=120) as client:
        yield client, log


@pytest.fixture(scope="module")
def default(tiny, caplog_module):
    """The default limits, served from this process (a uvicorn.Server in a thread: no second start-up)."""
    import uvicorn

    from seq2labels.apps.serve import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny.generator), host="127.0.0.1", port=port,
                                           log_config=None))  # leave logging alone: records reach the root
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "in-thread server did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client, caplog_module
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def caplog_module(tmp_path_factory):
    """Warnings and errors logged in this process (uvicorn's and seq2labels'), in a file for the module."""
    path = tmp_path_factory.mktemp("fuzz-log") / "default.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()


# ---- what to send ---------------------------------------------------------------------------

# every code point, surrogates (Cs) included; plus the awkward ones drawn often
AWKWARD = ["\x00", "\x1b", "\u200f", "\u202e", "\ufeff", "\ud83d", "\udc00", "😀", "👩‍👩‍👧", "שלום", "مرحبا",
           "\r\n", "\t", "\\", '"', "\u2028", "\uffff", "\U0010ffff"]
fragment = st.one_of(st.text(st.characters(exclude_categories=()), max_size=30), st.sampled_from(AWKWARD))
text = st.lists(fragment, max_size=10).map("".join)
texts = st.lists(text, max_size=12)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                      st.floats(allow_nan=False), text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=20)
option = st.one_of(st.none(), st.integers(-3, 40), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   json_value)


@st.composite
def well_formed(draw) -> dict:
    """A request every field of which is valid (texts may hold lone surrogates: see `expect`)."""
    request = {"texts": draw(texts)}
    if draw(st.booleans()):
        request["top_k"] = draw(st.integers(1, 40))
    if draw(st.booleans()):
        request["threshold"] = draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        request["beam_size"] = draw(st.integers(1, 32))
    return request


@st.composite
def shaped(draw) -> dict:
    """Right keys, values of any JSON shape; sometimes an unknown key or a missing `texts`."""
    request = {key: draw(option) for key in draw(st.sets(st.sampled_from(["top_k", "threshold", "beam_size",
                                                                            "min_labels"])))}
    if draw(st.integers(0, 9)):
        request["texts"] = draw(st.one_of(texts, json_value, st.lists(json_value, max_size=5)))
    if not draw(st.integers(0, 9)):
        request[draw(text.filter(bool))] = draw(json_value)  # may hold a lone surrogate: it comes back in the error
    return request


def has_surrogate(texts) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for t in texts for c in t)


def encode(request, ascii_only: bool) -> bytes:
    """JSON bytes: with \\u escapes (a lone surrogate stays valid JSON) or raw UTF-8 (then it is invalid)."""
    return json.dumps(request, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.tuples(st.just("well_formed"), well_formed(), st.booleans()),
    st.tuples(st.just("shaped"), shaped(), st.booleans()),
    st.tuples(st.just("json"), json_value, st.booleans()),
    st.tuples(st.just("bytes"), st.binary(max_size=300), st.just(False)),
)


def check_answer(response, request) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body["detail"], str) and body["detail"], body
        return
    assert response.status_code == 200
    assert len(body["predictions"]) == len(request["texts"])
    for prediction in body["predictions"]:
        assert len(prediction["labels"]) == len(prediction["probabilities"])
        assert all(0.0 <= p <= 1.0 for p in prediction["probabilities"])


def expected_status(kind: str, body: bytes) -> int | None:
    """The exact status a well-formed request must get (None: any 2xx/4xx will do).

    The texts are read back as the server reads them (json.loads of the bytes): an escaped
    surrogate pair becomes one valid character, a lone surrogate stays and is refused.
    """
    if kind != "well_formed":
        return None
    return 422 if has_surrogate(json.loads(body)["texts"]) else 200


# ---- the fuzzing ----------------------------------------------------------------------------

@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payload=payloads)
def test_predict_never_answers_5xx(raised, payload):
    client, _ = raised
    kind, request, ascii_only = payload
    body = request if kind == "bytes" else encode(request, ascii_only)
    response = client.post("/predict", content=body, headers=JSON)
    hypothesis.event(f"{kind}: {response.status_code}")
    check_answer(response, request)
    status = expected_status(kind, body)
    if status is not None:
        assert response.status_code == status, response.text[:500]


def test_a_100000_character_text_is_labelled_when_allowed(raised):
    client, _ = raised
    text = ("Grüße 😀 שלום \u202e \x00 net profit rose " * 5000)[:100_000]
    assert len(text) == 100_000
    response = client.post("/predict", content=encode({"texts": [text, "short"]}, False), headers=JSON)
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["predictions"]) == 2


def test_a_100000_character_text_is_422_at_the_default_limit(default):
    client, log = default
    response = client.post("/predict", json={"texts": ["x" * 100_000]})
    assert response.status_code == 422
    assert "20000 characters" in response.json()["detail"]


@pytest.mark.parametrize("fixture", ["raised", "default"])
def test_the_servers_stay_healthy_and_log_no_traceback(request, fixture):
    client, log = request.getfixturevalue(fixture)
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"texts": ["still fine"]}).status_code == 200
    text = log.read_text(encoding="utf-8", errors="replace")
    for bad in ("Traceback", "Exception in ASGI application", " 500 "):
        assert bad not in text, text[-3000:]
