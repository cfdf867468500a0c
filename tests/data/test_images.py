"""Image decoding and JSON Lines with images: every hostile file is a DataFormatError naming file and line."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from seq2labels.data.images import ImageSpec, iter_multimodal_examples, load_image, read_multimodal_examples
from seq2labels.errors import DataFormatError

SPEC = ImageSpec(size=8, color="rgb", max_pixels=10_000, max_bytes=100_000)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height pixels with almost no data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_jsonl(folder, rows) -> str:
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rgb_gray_and_sizes(tmp_path):
    img = Image.fromarray(np.full((20, 10, 3), [255, 0, 0], np.uint8))
    out = load_image(png_bytes(img), SPEC)
    assert out.shape == (3, 8, 8) and out.dtype == np.uint8
    assert (out[0] == 255).all() and (out[1] == 0).all()
    gray = load_image(png_bytes(img), ImageSpec(size=8, color="gray"))
    assert gray.shape == (1, 8, 8)
    assert 70 < int(gray.mean()) < 90              # red in luma: 0.299 * 255


def test_alpha_is_composited_over_white():
    rgba = np.zeros((8, 8, 4), np.uint8)           # black, fully transparent
    out = load_image(png_bytes(Image.fromarray(rgba, "RGBA")), SPEC)
    assert (out == 255).all()
    rgba[..., 3] = 255                             # opaque black
    assert (load_image(png_bytes(Image.fromarray(rgba, "RGBA")), SPEC) == 0).all()


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.full((8, 8), 65535 // 2, np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    out = load_image(png_bytes(img), ImageSpec(size=8, color="gray"))
    assert 120 <= int(out.mean()) <= 135


def test_palette_and_la_and_one_bit():
    pal = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    assert load_image(png_bytes(pal), SPEC).shape == (3, 8, 8)
    la = Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA")
    assert (load_image(png_bytes(la), SPEC) == 255).all()
    one = Image.fromarray(np.eye(8, dtype=bool))
    assert load_image(png_bytes(one), ImageSpec(size=8, color="gray")).max() == 255


def test_arrays_and_pil_images():
    assert load_image(np.ones((5, 5)), SPEC).max() == 255           # floats in [0, 1]
    assert load_image(Image.new("L", (3, 3), 7), SPEC).max() == 7
    with pytest.raises(DataFormatError, match="must be"):
        load_image(np.zeros((2, 2, 2)), SPEC)
    with pytest.raises(DataFormatError, match="NaN"):
        load_image(np.full((2, 2), np.nan), SPEC)
    with pytest.raises(DataFormatError, match="a path, bytes"):
        load_image(42, SPEC)


def test_hostile_bytes():
    with pytest.raises(DataFormatError, match="not an image"):
        load_image(b"this is not an image", SPEC, "upload")
    good = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)))
    with pytest.raises(DataFormatError, match="corrupt or truncated"):
        load_image(good[: len(good) // 2], SPEC, "upload")
    with pytest.raises(DataFormatError, match="decompression bomb"):
        load_image(bomb_png(100_000, 100_000), SPEC, "upload")
    with pytest.raises(DataFormatError, match="max_bytes"):
        load_image(b"\0" * 200_000, SPEC, "upload")


def test_jsonl_reads_images_relative_to_the_file(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), (0, 255, 0)).save(tmp_path / "img" / "a.png")
    path = write_jsonl(tmp_path, [{"image": "img/a.png", "labels": ["green"]},
                                  {"text": "words", "features": [1, 2.5], "labels": ["x", "x"]}])
    first, second = read_multimodal_examples(path, SPEC)
    assert first.image == str((tmp_path / "img" / "a.png").resolve()) and first.labels == ("green",)
    assert second.image is None and second.features == (1.0, 2.5) and second.labels == ("x",)


@pytest.mark.parametrize("name, content, message", [
    ("missing.png", None, "not found"),
    ("text.png", b"hello", "not an image"),
    ("bomb.png", bomb_png(50_000, 50_000), "decompression bomb"),
])
def test_jsonl_names_the_line_of_a_bad_image(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    path = write_jsonl(tmp_path, [{"image": "ok.png", "labels": ["a"]}, {"image": name, "labels": ["b"]}])
    with pytest.raises(DataFormatError, match=message) as err:
        read_multimodal_examples(path, SPEC)
    assert f"{path}:2" in str(err.value)


def test_truncated_png_in_a_file(tmp_path):
    data = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 60), dtype=np.uint8)))
    (tmp_path / "cut.png").write_bytes(data[:300])
    path = write_jsonl(tmp_path, [{"image": "cut.png", "labels": ["a"]}])
    with pytest.raises(DataFormatError, match=r"data.jsonl:1.*(truncated|corrupt)"):
        read_multimodal_examples(path, SPEC)


@pytest.mark.parametrize("value", ["../outside.png", "/etc/passwd", "sub/../../x.png"])
def test_paths_leaving_the_folder_are_refused(tmp_path, value):
    folder = tmp_path / "data"
    folder.mkdir()
    path = write_jsonl(folder, [{"image": value, "labels": ["a"]}])
    with pytest.raises(DataFormatError, match="leaves the data file's folder") as err:
        read_multimodal_examples(path, SPEC)
    assert ":1:" in str(err.value)


def test_symlink_out_is_refused_and_allow_outside_reads_it(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    path = write_jsonl(folder, [{"image": "link.png", "labels": ["a"]}, {"image": "../outside.png", "labels": ["b"]}])
    with pytest.raises(DataFormatError, match="leaves"):
        read_multimodal_examples(path, SPEC)
    assert len(read_multimodal_examples(path, SPEC, allow_outside=True)) == 2


@pytest.mark.parametrize("row, message", [
    ({"labels": ["a"]}, "no input"),
    ({"image": 3, "labels": ["a"]}, "field 'image'"),
    ({"features": ["x"], "labels": ["a"]}, "field 'features'"),
    ({"features": [1e999], "labels": ["a"]}, "finite"),
    ({"text": "t", "labels": "a"}, "field 'labels'"),
    ({"text": 5, "labels": ["a"]}, "field 'text'"),
])
def test_bad_fields(tmp_path, row, message):
    path = write_jsonl(tmp_path, [row])
    with pytest.raises(DataFormatError, match=message):
        read_multimodal_examples(path, SPEC)


def test_streams_one_line_at_a_time(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    path = write_jsonl(tmp_path, [{"image": "ok.png", "labels": ["a"]}, {"image": "gone.png", "labels": ["b"]}])
    stream = iter_multimodal_examples(path, SPEC)
    assert next(stream).labels == ("a",)          # the first example comes before line 2 is read
    with pytest.raises(DataFormatError, match=":2:"):
        next(stream)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataFormatError, match="no examples"):
        read_multimodal_examples(path, SPEC)
