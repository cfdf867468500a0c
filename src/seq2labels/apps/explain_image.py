"""Attention over an image, per emitted label: overlay PNGs for image and fused models.

Each label the decoder emits comes with its attention over the memory; for an image that is one
weight per cell of the CNN's last feature map. :func:`explain_images` returns those grids (and, for
a fused model, the weight each modality got); :func:`overlay_png` paints one grid over the image
(the cell weights scaled to the strongest, upsampled, in red); :func:`explain_images_to_folder`
writes one PNG per example and label plus explanations.jsonl. Drawing needs only Pillow.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from seq2labels.data.images import ImageSpec, load_image, require_pillow
from seq2labels.data.readers import Example
from seq2labels.errors import ConfigError
from seq2labels.utils.atomic import atomic_write_bytes, atomic_write_text

DISPLAY_SIZE = 256           # overlays are drawn at this many pixels a side
OVERLAY_RGB = (230, 30, 30)
OVERLAY_ALPHA = 0.65         # the strongest cell's opacity


@dataclass
class ImageExplanation:
    """One example's labels in generated order with, per label, its attention grid over the image
    (``grids``: (labels, h, w), None without an image) and the share each modality got."""

    labels: list[str]
    probabilities: list[float]
    grids: np.ndarray | None
    shares: list[dict[str, float]]

    def to_json(self) -> dict:
        return {"labels": self.labels, "probabilities": [round(p, 6) for p in self.probabilities],
                "attention_grids": None if self.grids is None else np.round(self.grids, 6).tolist(),
                "modality_shares": [{k: round(v, 6) for k, v in s.items()} for s in self.shares]}


def explain_images(generator, examples: Sequence[Example], *, beam_size: int | None = None,
                   max_labels: int | None = None) -> list[ImageExplanation]:
    """Labels and per-label attention grids of examples, for a model reading images (or a fusion)."""
    grid = getattr(generator.model.encoder, "grid", None)
    if not generator.uses_inputs:
        raise ConfigError("image explanations need a model with an image (cnn) or fusion encoder")
    preds = generator.predict_examples(examples, beam_size=beam_size, max_labels=max_labels, return_attention=True)
    layout = generator.model.encoder.layout()
    out = []
    for ex, pred in zip(examples, preds):
        att = pred.attention                                                  # (labels, positions)
        grids, shares = None, []
        for row in att:
            share = {m: float(row[start:start + n].sum()) for m, start, n in layout}
            fixed = sum(n for _, _, n in layout)
            if att.shape[1] > fixed:
                share["text"] = float(row[fixed:].sum())
            shares.append(share)
        image_part = next(((s, n) for m, s, n in layout if m == "image"), None)
        if image_part is not None and grid is not None and ex.image is not None:
            start, n = image_part
            grids = att[:, start:start + n].reshape(len(pred.labels), *grid)  # (labels, h, w)
        out.append(ImageExplanation(pred.labels, pred.probabilities, grids, shares))
    return out


def overlay_png(image, grid: np.ndarray, spec: ImageSpec | None = None, size: int = DISPLAY_SIZE) -> bytes:
    """PNG of ``image`` (anything load_image reads) with ``grid`` (h, w) painted over it in red."""
    Image = require_pillow()
    base = load_image(image, ImageSpec(size=size, color="rgb", max_pixels=(spec or ImageSpec()).max_pixels,
                                       max_bytes=(spec or ImageSpec()).max_bytes))  # (3, size, size)
    picture = Image.fromarray(base.transpose(1, 2, 0)).convert("RGBA")
    weights = np.asarray(grid, dtype=np.float64)
    weights = weights / weights.max() if weights.max() > 0 else weights
    heat = Image.fromarray(np.uint8(np.clip(weights, 0, 1) * 255 * OVERLAY_ALPHA), mode="L")
    heat = heat.resize((size, size), Image.BILINEAR)
    layer = Image.new("RGBA", (size, size), OVERLAY_RGB + (0,))
    layer.putalpha(heat)
    buf = io.BytesIO()
    Image.alpha_composite(picture, layer).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def safe_name(label: str) -> str:
    """A label as a file-name part (no separators, no dots first)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:60] or "label"


def explain_images_to_folder(generator, examples: Sequence[Example], out_dir: str | Path, *,
                             beam_size: int | None = None, max_labels: int | None = None) -> dict:
    """example_<i>_<k>_<label>.png per example i and emitted label k, and explanations.jsonl."""
    from seq2labels.pipeline.multimodal import image_spec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    explanations = explain_images(generator, examples, beam_size=beam_size, max_labels=max_labels)
    spec = image_spec(generator.config)
    lines, pngs = [], []
    for i, (ex, exp) in enumerate(zip(examples, explanations)):
        files = []
        if exp.grids is not None:
            for k, label in enumerate(exp.labels):
                name = f"example_{i}_{k}_{safe_name(label)}.png"
                atomic_write_bytes(out / name, overlay_png(ex.image, exp.grids[k], spec))
                files.append(name)
        pngs += files
        lines.append(json.dumps({**exp.to_json(), "overlays": files}, ensure_ascii=False))
    atomic_write_text(out / "explanations.jsonl", "".join(line + "\n" for line in lines))
    return {"jsonl": out / "explanations.jsonl", "pngs": [out / p for p in pngs]}
