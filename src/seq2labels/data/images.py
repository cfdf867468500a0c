"""Images as model input: decoding with Pillow under size limits, and JSON Lines with images.

Every image becomes a uint8 array (channels, size, size): grayscale, RGB, palette, 16-bit and
alpha images are all brought to the model's colour space (alpha is composited over white, 16-bit
is scaled, not clipped). Hostile files stop with a :class:`DataFormatError` naming the file and
line: missing, not an image, truncated, more bytes or pixels than the limits (a decompression
bomb declares huge dimensions in a tiny header; the pixel count is checked before any pixel is
decoded). Pillow is the ``image`` extra and is imported only here, only when an image is read.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2labels.data.readers import Example, decode_line, iter_lines
from seq2labels.errors import DataFormatError, Seq2LabelsError

COLORS = ("rgb", "gray")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class MissingPillow(Seq2LabelsError, ImportError):
    """Pillow is not installed; names the extra."""


@dataclass(frozen=True)
class ImageSpec:
    """How images are read: the square ``size`` they are resized to, ``color`` (rgb | gray), and the
    limits a file must stay under (bytes on disk, decoded pixels)."""

    size: int = 32
    color: str = "rgb"
    max_pixels: int = 40_000_000
    max_bytes: int = 20_000_000

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"image color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if self.size < 4 or self.max_pixels < 1 or self.max_bytes < 1:
            raise ValueError("image size must be >= 4 and the limits >= 1")

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1


def require_pillow():
    """The PIL package, or a message naming the extra to install."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in the test environment
        raise MissingPillow("image inputs need Pillow: pip install 'seq2labels[image]'") from None
    return Image


# --------------------------------------------------------------------------- decoding

def open_image(data: bytes, spec: ImageSpec, where: str):
    """A fully decoded PIL image from ``data``; every failure is a DataFormatError naming ``where``."""
    Image = require_pillow()
    if len(data) > spec.max_bytes:
        raise DataFormatError(f"{where}: image is {len(data)} bytes, more than image.max_bytes = {spec.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size                       # from the header: nothing decoded yet
            if width * height > spec.max_pixels:
                raise DataFormatError(f"{where}: image is {width}x{height} pixels, more than image.max_pixels = "
                                      f"{spec.max_pixels} (a decompression bomb?)")
            img.seek(0)                                    # first frame of a GIF/TIFF
            img.load()
    except DataFormatError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataFormatError(f"{where}: image too large to decode ({exc})") from None
    except Image.UnidentifiedImageError:
        raise DataFormatError(f"{where}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:   # truncated or corrupt pixel data
        raise DataFormatError(f"{where}: corrupt or truncated image ({exc})") from None
    if width < 1 or height < 1:
        raise DataFormatError(f"{where}: image has no pixels ({width}x{height})")
    return img


def to_color(img, color: str):
    """``img`` in mode L (gray) or RGB: 16-bit and float scaled to 8 bits, alpha over white, palette expanded."""
    Image = require_pillow()
    if img.mode in SIXTEEN_BIT_MODES or img.mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64)                       # (h, w)
        top = 65535.0 if img.mode in SIXTEEN_BIT_MODES else max(float(values.max()), 1.0)
        img = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("L" if color == "gray" else "RGB")


def image_array(img, spec: ImageSpec) -> np.ndarray:
    """(channels, size, size) uint8: ``img`` in the spec's colours, resized (bilinear) to size x size."""
    Image = require_pillow()
    img = to_color(img, spec.color)
    if img.size != (spec.size, spec.size):
        img = img.resize((spec.size, spec.size), Image.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)                             # (size, size) or (size, size, 3)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]                                      # (size, size, 1)
    return np.array(pixels.transpose(2, 0, 1), order="C")                # (channels, size, size) a writable copy


def array_image(values: np.ndarray, where: str):
    """A PIL image from a numpy array: (h, w) gray, (h, w, 3) RGB or (h, w, 4) RGBA; uint8, or floats in [0, 1]."""
    Image = require_pillow()
    values = np.asarray(values)
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[2] not in (1, 3, 4)) or 0 in values.shape:
        raise DataFormatError(f"{where}: an image array must be (h, w), (h, w, 3) or (h, w, 4), got {values.shape}")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise DataFormatError(f"{where}: image array holds NaN or inf")
        values = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif values.dtype != np.uint8:
        if values.dtype.kind not in "iub" or values.min() < 0 or values.max() > 255:
            raise DataFormatError(f"{where}: an integer image array must hold 0..255, dtype {values.dtype}")
        values = values.astype(np.uint8)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    return Image.fromarray(values)


def load_image(source: Any, spec: ImageSpec, where: str = "image") -> np.ndarray:
    """(channels, size, size) uint8 from a file path, encoded bytes, a numpy array or a PIL image."""
    Image = require_pillow()
    if isinstance(source, (str, os.PathLike)):
        img = open_image(read_image_bytes(Path(source), spec, where), spec, f"{where} ({source})")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        img = open_image(bytes(source), spec, where)
    elif isinstance(source, np.ndarray):
        if source.size > spec.max_pixels * 4:
            raise DataFormatError(f"{where}: image array of {source.size} values is over image.max_pixels")
        img = array_image(source, where)
    elif isinstance(source, Image.Image):
        if source.size[0] * source.size[1] > spec.max_pixels:
            raise DataFormatError(f"{where}: image is {source.size[0]}x{source.size[1]} pixels, more than "
                                  f"image.max_pixels = {spec.max_pixels}")
        img = source
    else:
        raise DataFormatError(f"{where}: an image must be a path, bytes, a numpy array or a PIL image, "
                              f"got {type(source).__name__}")
    return image_array(img, spec)


def read_image_bytes(path: Path, spec: ImageSpec, where: str) -> bytes:
    """The file's bytes, refusing a missing file, a folder, or one over ``spec.max_bytes`` before reading it."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DataFormatError(f"{where}: {path} is not a file")
        if size > spec.max_bytes:
            raise DataFormatError(f"{where}: {path} is {size} bytes, more than image.max_bytes = {spec.max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{where}: image file not found: {path}") from None
    except DataFormatError:
        raise
    except OSError as exc:
        raise DataFormatError(f"{where}: cannot read image {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- JSON Lines with images

def resolve_image_path(value: Any, base: Path, allow_outside: bool, path: Path, line_no: int) -> Path:
    """The image file a line names, relative to the JSONL file's folder; one that leaves that folder
    (absolute, ``..`` or a symlink out) is refused unless ``allow_outside``."""
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError("must be a non-empty path string", path=path, line=line_no, field="image")
    target = (base / value).resolve()
    if not allow_outside and not target.is_relative_to(base.resolve()):
        raise DataFormatError(f"image path {value!r} leaves the data file's folder {base} (set "
                              "image.allow_outside: true to allow it)", path=path, line=line_no, field="image")
    return target


def parse_features(value: Any, path: Path | str, line_no: int | None) -> tuple[float, ...]:
    """A list of finite numbers (the ``features`` modality)."""
    if not isinstance(value, list) or not value:
        raise DataFormatError("must be a non-empty list of numbers", path=path, line=line_no, field="features")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise DataFormatError(f"item {i} is {v!r}, expected a finite number", path=path, line=line_no,
                                  field="features")
        out.append(float(v))
    return tuple(out)


def parse_multimodal_line(line: str, path: Path, line_no: int, allow_outside: bool) -> Example:
    """``{"text"?: str, "image"?: path, "features"?: [numbers], "labels": [str]}``: at least one input."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as err:
        raise DataFormatError(f"invalid JSON: {getattr(err, 'msg', err)}", path=path, line=line_no) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line_no)
    labels = obj.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise DataFormatError("must be a list of non-empty strings", path=path, line=line_no, field="labels")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise DataFormatError(f"must be a string, got {type(text).__name__}", path=path, line=line_no, field="text")
    image = obj.get("image")
    if image is not None:
        image = str(resolve_image_path(image, path.parent, allow_outside, path, line_no))
    features = parse_features(obj["features"], path, line_no) if obj.get("features") is not None else None
    if not text and image is None and features is None:
        raise DataFormatError("no input: give at least one of 'text', 'image', 'features'", path=path, line=line_no)
    return Example(text=text or "", labels=tuple(dict.fromkeys(x.strip() for x in labels)), image=image,
                   features=features)


def iter_multimodal_examples(path: str | os.PathLike, spec: ImageSpec | None = None, *, allow_outside: bool = False,
                             encoding_errors: str = "strict") -> Iterator[Example]:
    """Stream the examples of a JSON Lines file with images (and/or text, features), one line at a time.

    With ``spec`` every image is decoded here under its limits, so a bad one is reported with its
    line; the example keeps the image's resolved path (decoded again when it is encoded)."""
    path = Path(path)
    count = 0
    for line_no, raw in iter_lines(path):
        line = decode_line(raw, path, line_no, encoding_errors)
        if not line.strip():
            continue
        example = parse_multimodal_line(line, path, line_no, allow_outside)
        if spec is not None and example.image is not None:
            load_image(example.image, spec, where=f"{path}:{line_no}: field 'image'")
        count += 1
        yield example
    if count == 0:
        raise DataFormatError("no examples (the file is empty or blank)", path=path)


def read_multimodal_examples(path: str | os.PathLike, spec: ImageSpec | None = None, *,
                             allow_outside: bool = False, encoding_errors: str = "strict") -> list[Example]:
    """Every example of ``path`` (see :func:`iter_multimodal_examples`)."""
    return list(iter_multimodal_examples(path, spec, allow_outside=allow_outside, encoding_errors=encoding_errors))
