"""The service's HTTP guards: the body-size limit (an ASGI middleware) and the one-line messages
for requests that fail validation, which never echo the submitted values back."""

from __future__ import annotations

import json
import logging
import math
from typing import Optional, Sequence

from seq2labels.apps.serve_runner import ServeSettings

log = logging.getLogger(__name__)

# ---- request body size ------------------------------------------------------------------

class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 before the app sees it.

    A declared Content-Length over the limit is refused without reading; otherwise the body is
    counted as it streams in (a client may lie about the length or send it chunked) and, once
    complete and within the limit, replayed to the app in one piece.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send, f"{declared} bytes declared")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send, f"more than {self.max_bytes} bytes sent")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for http.disconnect as usual

        await self.app(scope, replay, send)

    async def _too_large(self, send, what: str) -> None:
        message = f"request body too large ({what}): the limit is {self.max_bytes} bytes (--max-body-bytes)"
        log.warning("413: %s", message)
        await _send_json(send, 413, {"detail": message})


def _content_length(scope) -> Optional[int]:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send, status: int, content: dict) -> None:
    body = json.dumps(content).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---- error messages ---------------------------------------------------------------------

def _describe_validation_errors(errors: Sequence[dict], settings: ServeSettings) -> tuple[int, str, list]:
    """(status, one-line message, [{loc, msg, type}]) for a RequestValidationError.

    The submitted values are never echoed back: they may be megabytes, or text that cannot be
    encoded.
    """
    status = 422
    items, parts = [], []
    for error in errors:
        loc = [_safe(part) for part in error.get("loc", ()) if part != "body"]
        kind = str(error.get("type", ""))
        msg = str(error.get("msg", "invalid value"))
        ctx = error.get("ctx") or {}
        if kind == "json_invalid":
            status = 400
            msg = f"invalid JSON at character {loc[0] if loc else '?'}: {ctx.get('error', 'cannot parse')}"
            loc = []
        elif kind == "too_long" and loc == ["texts"]:
            msg = (f"too many texts: at most {settings.max_texts} per request (--max-texts), "
                   f"got {ctx.get('actual_length', 'more')}")
        elif kind == "string_too_long" and len(loc) == 2 and loc[0] == "texts":
            got = error.get("input")
            length = f", got {len(got)}" if isinstance(got, str) else ""
            msg = f"text too long: at most {settings.max_chars} characters per text (--max-chars){length}"
        elif kind == "string_unicode":
            msg = "not valid Unicode text (a lone surrogate escape such as \\ud800?)"
        elif not loc and kind in ("model_attributes_type", "dict_type", "missing", "model_type"):
            msg = 'the body must be a JSON object like {"texts": ["some text", ...]}'
        where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
        items.append({"loc": loc, "msg": msg, "type": kind})
        parts.append(f"{where}: {msg}" if where else msg)
    message = "; ".join(parts[:5]) + (f" (and {len(parts) - 5} more)" if len(parts) > 5 else "")
    return status, message or "invalid request", items


def _safe(part) -> "int | str":
    """A location part fit to send back: a client's own key may be huge or hold a lone surrogate."""
    if isinstance(part, int):
        return part
    text = str(part)
    text = text[:80] + "..." if len(text) > 80 else text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _body_error(cause: Optional[BaseException]) -> Optional[str]:
    """A clearer message for the body errors FastAPI reports as 'There was an error parsing the body'."""
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 JSON (byte {cause.start}: {cause.reason})"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply"
    return None


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None
