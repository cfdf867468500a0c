"""``POST /predict/image`` for image and fused models: a multipart upload of one image (plus an
optional ``text`` and ``features`` form field), answered like ``/predict``.

The body is bounded by the service's ``--max-body-bytes`` (413) and the image by the model's
``image.max_bytes`` / ``image.max_pixels``; the image is decoded before inference, so a file that
is not an image, is truncated, or declares a decompression bomb's dimensions gets a 422 with a
message, never a 500. Needs python-multipart (in the ``serve`` extra).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations at run time.

import json
import logging
import time
from typing import Optional

from seq2labels.apps.serve_runner import InferenceTimeout, MissingDependencyError
from seq2labels.errors import DataFormatError, Seq2LabelsError

log = logging.getLogger(__name__)


def require_multipart() -> None:
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        try:
            import multipart  # noqa: F401  (older releases)
        except ImportError:
            raise MissingDependencyError("image uploads need python-multipart: pip install 'seq2labels[serve]'") from None


def parse_features(raw: Optional[str]):
    """The ``features`` form field: a JSON list of numbers, or None."""
    if raw is None or raw == "":
        return None
    from seq2labels.data.images import parse_features as check

    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise DataFormatError("field 'features': not JSON (expected a list of numbers)") from None
    return check(value, "upload", None)


def add_image_route(app, generator, settings, runner, default_beam: int, label_bounds, to_response) -> None:
    """Register ``POST /predict/image`` on ``app`` for ``generator``."""
    require_multipart()
    from fastapi import File, Form, HTTPException, UploadFile

    from seq2labels.data.images import load_image
    from seq2labels.data.readers import Example
    from seq2labels.pipeline.multimodal import image_spec

    spec = image_spec(generator.config)
    labels = list(generator.label_vocab.labels)

    @app.post("/predict/image", responses={413: {"description": "body too large"},
                                           422: {"description": "not an image, or over a limit"},
                                           503: {"description": "inference timed out"}})
    async def predict_image(image: UploadFile = File(...), text: Optional[str] = Form(None),
                            features: Optional[str] = Form(None), beam_size: Optional[int] = Form(None),
                            top_k: Optional[int] = Form(None)) -> dict:
        if beam_size is not None and not 1 <= beam_size <= 64:
            raise HTTPException(422, "beam_size must be in 1..64")
        if top_k is not None and top_k < 1:
            raise HTTPException(422, "top_k must be >= 1")
        if text is not None and len(text) > settings.max_chars:
            raise HTTPException(422, f"text has {len(text)} characters, more than {settings.max_chars}")
        data = await image.read(spec.max_bytes + 1)
        try:
            load_image(data, spec, where="image")          # decoded here: a bad upload is a 422 before inference
            example = Example(text=text or "", labels=(), image=data, features=parse_features(features))
        except DataFormatError as exc:
            raise HTTPException(422, str(exc)) from None
        beam = beam_size or default_beam
        max_labels, _ = label_bounds(top_k, None, len(labels), generator.config.decode.max_labels)
        started = time.perf_counter()
        try:
            predictions = await runner.predict_examples([example], beam_size=beam, max_labels=max_labels,
                                                        timeout=settings.timeout)
        except InferenceTimeout as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        except (Seq2LabelsError, ValueError, TypeError) as exc:
            log.warning("422 from the model on an upload: %s", exc, exc_info=True)
            raise HTTPException(422, f"cannot label this input: {exc}") from None
        log.debug("predicted an image in %.1f ms", 1000 * (time.perf_counter() - started))
        return {"model": settings.model_name, "beam_size": beam, "predictions": [to_response(predictions[0], None)]}
