"""An HTTP service around a trained model: ``seq2labels serve MODEL`` (FastAPI under uvicorn).

Endpoints: ``POST /predict``, ``POST /predict/image`` (image and fused models), ``GET /health``, ``GET /labels`` and FastAPI's own ``/docs`` and
``/openapi.json``. Every request is bounded (texts per request, characters per text, body bytes,
seconds of inference), and bad input of any shape is answered with a 4xx and a JSON message,
never a 500 (that is kept for bugs in the service): it is meant to sit behind code that sends
whatever it has.

Decoding is :meth:`seq2labels.pipeline.generator.LabelGenerator.predict`, the same call ``seq2labels predict``
makes; the service adds only the HTTP layer. Inference runs in one worker thread, one request at a
time (a lock guards the model), so the event loop stays free to answer ``/health`` and to time out
slow requests. fastapi and uvicorn are imported only here, and only when needed (the ``serve``
extra).
"""

# No ``from __future__ import annotations`` here: FastAPI and pydantic read the annotations of the
# request models and endpoints defined inside create_app at run time, where names must resolve.

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from seq2labels.apps.serve_limits import (  # noqa: F401  (BodySizeLimit re-exported)
    BodySizeLimit,
    _body_error,
    _describe_validation_errors,
    _finite,
)
from seq2labels.apps.serve_runner import (  # noqa: F401  (re-exported: the names users and tests import)
    MAX_BEAM_SIZE,
    InferenceRunner,
    InferenceTimeout,
    MissingDependencyError,
    ServeSettings,
    _import_fastapi,
    _model_lock,
)
from seq2labels.errors import ConfigError, Seq2LabelsError

log = logging.getLogger(__name__)

MAX_TOP_K = 1000         # a request's top_k is capped here (and in effect at the number of labels)
SETTINGS_ENV = "SEQ2LABELS_SERVE_SETTINGS"   # how `--workers N` hands the settings to each worker


# ---- the app ----------------------------------------------------------------------------

def create_app(generator, settings: Optional[ServeSettings] = None):
    """A FastAPI app serving ``generator`` (a :class:`seq2labels.pipeline.generator.LabelGenerator`)."""
    _import_fastapi()
    from contextlib import asynccontextmanager

    from fastapi import Depends, FastAPI, HTTPException

    from seq2labels._version import __version__
    from seq2labels.pipeline.files import FORMAT_NAME, FORMAT_VERSION

    settings = settings or ServeSettings()
    labels = list(generator.label_vocab.labels)
    default_beam = settings.beam_size or generator.config.decode.beam_size
    default_max_labels = generator.config.decode.max_labels
    runner = InferenceRunner(generator, settings.batch_size)
    schemas = _schemas(settings, default_beam)
    PredictRequest = schemas.PredictRequest

    @asynccontextmanager
    async def lifespan(app):
        log.info("serving %s: %d labels, beam %d, limits %s", settings.model_name, len(labels), default_beam,
                 json.dumps(_limits(settings)))
        yield
        runner.close()

    app = FastAPI(title="seq2labels", version=__version__, lifespan=lifespan,
                  description="Multi-label classification by sequence generation: each text's labels "
                              "in generated order, each with its step probability.")

    @app.post("/predict", response_model=schemas.PredictResponse, dependencies=[Depends(_json_content_type())],
              responses={400: {"description": "invalid JSON"}, 413: {"description": "body too large"},
                         415: {"description": "not JSON"}, 422: {"description": "invalid or over a limit"},
                         503: {"description": "inference timed out"}})
    async def predict(body: PredictRequest) -> dict:
        beam = body.beam_size or default_beam
        max_labels, min_labels = _label_bounds(body.top_k, body.min_labels, len(labels), default_max_labels)
        started = time.perf_counter()
        try:
            predictions = await runner.predict(body.texts, beam_size=beam, max_labels=max_labels,
                                               min_labels=min_labels, timeout=settings.timeout)
        except InferenceTimeout as exc:
            log.warning("503: %s (%d texts)", exc, len(body.texts))
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        except (Seq2LabelsError, ValueError, TypeError) as exc:
            # The input passed validation, so this is still about the input: say so, log the trace.
            log.warning("422 from the model on valid-looking input: %s", exc, exc_info=True)
            raise HTTPException(422, f"cannot label these texts: {exc}") from None
        except Exception as exc:
            # A bug. Answered here rather than by the global handler so the connection stays usable.
            log.error("500: predict failed on %d texts", len(body.texts), exc_info=True)
            raise HTTPException(500, f"internal error ({type(exc).__name__}); see the server log") from None
        log.debug("predicted %d texts in %.1f ms", len(body.texts), 1000 * (time.perf_counter() - started))
        return {"model": settings.model_name, "beam_size": beam,
                "predictions": [_to_response(p, body.threshold) for p in predictions]}

    @app.get("/health", response_model=schemas.Health)
    async def health() -> dict:
        return {"status": "ok", "model": settings.model_name, "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION, "seq2labels_version": __version__, "labels": len(labels),
                "device": str(generator.device), "default_beam_size": default_beam, "limits": _limits(settings)}

    @app.get("/labels", response_model=schemas.Labels)
    async def get_labels() -> dict:
        return {"labels": labels}

    if getattr(generator, "uses_inputs", False):  # an image or fused model: POST /predict/image too
        from seq2labels.apps.serve_images import add_image_route
        add_image_route(app, generator, settings, runner, default_beam, _label_bounds, _to_response)

    _add_error_handlers(app, settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.settings = settings
    app.state.runner = runner
    return app


def _schemas(settings: ServeSettings, default_beam: int):
    """The request and response models; the request's bounds come from ``settings`` (and show in /docs)."""
    from types import SimpleNamespace
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

    Text = Annotated[StrictStr, Field(max_length=settings.max_chars)]

    class PredictRequest(BaseModel):
        """Texts to label, with optional decoding settings for this request."""

        model_config = ConfigDict(extra="forbid")
        texts: Annotated[list[Text], Field(max_length=settings.max_texts,
                                           description=f"at most {settings.max_texts} texts of at most "
                                                       f"{settings.max_chars} characters each")]
        top_k: Optional[Annotated[StrictInt, Field(ge=1, le=MAX_TOP_K)]] = Field(
            None, description="at most this many labels per text: decoding stops after k labels "
                              "(as `seq2labels predict --top-k`)")
        threshold: Optional[Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]] = Field(
            None, description="drop labels whose step probability is below this")
        beam_size: Optional[Annotated[StrictInt, Field(ge=1, le=MAX_BEAM_SIZE)]] = Field(
            None, description=f"beam width; default {default_beam}")
        min_labels: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_TOP_K)]] = Field(
            None, description="at least this many labels per text (1: never an empty prediction)")

    class LabelledText(BaseModel):
        labels: list[str] = Field(description="labels in generated order")
        probabilities: list[float] = Field(description="each label's step probability")
        score: Optional[float] = Field(description="log-probability of the whole generated sequence "
                                                   "(before any threshold)")

    class PredictResponse(BaseModel):
        model: str
        beam_size: int
        predictions: list[LabelledText]

    class Limits(BaseModel):
        max_texts: int
        max_chars: int
        max_body_bytes: int
        timeout_s: float

    class Health(BaseModel):
        status: str
        model: str
        format: str
        format_version: int
        seq2labels_version: str
        labels: int
        device: str
        default_beam_size: int
        limits: Limits

    class Labels(BaseModel):
        labels: list[str] = Field(description="every label the model can emit, in its training order")

    return SimpleNamespace(PredictRequest=PredictRequest, PredictResponse=PredictResponse, Health=Health,
                           Labels=Labels)


def _json_content_type():
    """A dependency: 415 unless the body is declared JSON (FastAPI would report a confusing 422)."""
    from fastapi import HTTPException, Request

    def require_json(request: Request) -> None:
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise HTTPException(415, f"send the body as JSON with 'Content-Type: application/json' "
                                     f"(got {content_type[:100]!r})")

    return require_json


def _add_error_handlers(app, settings: ServeSettings) -> None:
    """Every error is JSON {"detail": message}; input errors are 4xx, only real bugs are 500."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        status, message, items = _describe_validation_errors(exc.errors(), settings)
        log.info("%d on %s %s: %s", status, request.method, request.url.path, message[:300])
        return JSONResponse({"detail": message, "errors": items[:20]}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        detail = _body_error(exc.__cause__) or str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        # A bug, not the client's fault: log the traceback, answer without one.
        log.error("500 on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"},
                            status_code=500)


def _label_bounds(top_k: Optional[int], min_labels: Optional[int], n_labels: int,
                  default_max: int) -> tuple[Optional[int], Optional[int]]:
    """(max_labels, min_labels) for decoding; 422 when min_labels exceeds the labels allowed."""
    from fastapi import HTTPException

    max_labels = min(top_k, n_labels) if top_k is not None else None
    if min_labels is not None:
        ceiling = max_labels if max_labels is not None else min(default_max, n_labels)
        if min_labels > ceiling:
            what = f"top_k ({top_k})" if top_k is not None and top_k <= n_labels else (
                f"the model's {n_labels} labels" if ceiling == n_labels else f"the model's max_labels ({default_max})")
            raise HTTPException(422, f"min_labels ({min_labels}) must not exceed {what}")
    return max_labels, min_labels


def _limits(settings: ServeSettings) -> dict:
    return {"max_texts": settings.max_texts, "max_chars": settings.max_chars,
            "max_body_bytes": settings.max_body_bytes, "timeout_s": settings.timeout}


def _to_response(prediction, threshold: Optional[float]) -> dict:
    """One Prediction as JSON, without the labels whose step probability is below ``threshold``."""
    keep = [i for i, p in enumerate(prediction.probabilities) if threshold is None or p >= threshold]
    return {"labels": [prediction.labels[i] for i in keep],
            "probabilities": [round(prediction.probabilities[i], 6) for i in keep],
            "score": _finite(round(prediction.score, 6))}


# ---- running it -------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerOptions:
    """What ``seq2labels serve`` needs beyond the app's settings."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"
    workers: int = 1
    threads: Optional[int] = None    # torch intra-op threads per worker
    backend: str = "torch"           # inference options, as for predict (seq2labels.pipeline.loading.load_for_inference)
    quantize: Optional[str] = None
    precision: Optional[str] = None
    thresholds: bool = True          # apply the folder's thresholds.json (--no-thresholds: off)
    settings: ServeSettings = field(default_factory=ServeSettings)


def load_for_serving(options: ServerOptions):
    """Load the model (one line of error if the folder or device is wrong) and build the app."""
    from seq2labels.pipeline.loading import load_for_inference

    _check_device(options.device)
    if options.threads:
        import torch
        torch.set_num_threads(options.threads)
    generator = load_for_inference(options.model, device=options.device, backend=options.backend,
                                   quantize=options.quantize, precision=options.precision,
                                   thresholds=options.thresholds)
    return create_app(generator, options.settings)


def _check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device!r}: CUDA is not available on this machine")


def serve(options: ServerOptions, log_level: str = "info") -> None:
    """Run the service under uvicorn until interrupted."""
    _import_fastapi()
    import uvicorn

    if not 0 <= options.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {options.port}")
    if options.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {options.workers}")
    if options.threads is not None and options.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {options.threads}")
    if options.workers == 1:
        uvicorn.run(load_for_serving(options), host=options.host, port=options.port, log_level=log_level)
        return
    load_for_serving(options)  # a bad model or device fails here, once, as one line (the copy is dropped)
    # Several worker processes need an import string; each worker loads its own copy of the model.
    os.environ[SETTINGS_ENV] = json.dumps({**asdict(options), "settings": asdict(options.settings)})
    uvicorn.run("seq2labels.apps.serve:app_from_environment", factory=True, host=options.host, port=options.port,
                workers=options.workers, log_level=log_level)


def app_from_environment():
    """uvicorn factory for ``--workers N``: rebuilds the app from the settings serve() put in the environment."""
    try:
        raw = json.loads(os.environ[SETTINGS_ENV])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{SETTINGS_ENV} is missing or not JSON ({exc}); start the service with "
                          "`seq2labels serve`") from None
    options = ServerOptions(**{**raw, "settings": ServeSettings(**raw["settings"])})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    return load_for_serving(options)


def options_from_args(args: Any) -> ServerOptions:
    """ServerOptions from ``seq2labels serve`` arguments; bad values are ConfigErrors naming the flag."""
    names = ("max_texts", "max_chars", "max_body_bytes", "timeout", "beam_size", "batch_size")
    settings = ServeSettings(model_name=_model_name(args.model), **{name: getattr(args, name) for name in names})
    return ServerOptions(model=args.model, host=args.host, port=args.port, device=args.device,
                         workers=args.workers, threads=args.threads, backend=getattr(args, "backend", "torch"),
                         quantize=getattr(args, "quantize", None), precision=getattr(args, "precision", None),
                         thresholds=not getattr(args, "no_thresholds", False), settings=settings)


def _model_name(path: str) -> str:
    """The folder's name, with its parent's when the folder is just called "model" (runs/x/model)."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    return "/".join(parts[-2:]) if parts[-1] == "model" and len(parts) > 1 and parts[-2] else parts[-1]
