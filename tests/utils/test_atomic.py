"""Atomic writes: a failed write never damages the existing file or leaves litter."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from seq2labels.utils import atomic
from seq2labels.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes_replaces_existing_content(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert _only(tmp_path) == ["data.bin"]


def test_write_bytes_failing_half_way_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content that never lands")
    assert target.read_bytes() == b"old"
    assert _only(tmp_path) == ["data.bin"]


def test_failed_replace_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "notes.txt"
    target.write_text("old")

    def broken_replace(src, dst):
        raise PermissionError("locked")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _only(tmp_path) == ["notes.txt"]


def test_atomic_path_writer_raising_half_way_keeps_old_content(tmp_path):
    target = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(target))

    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed while writing")
    assert torch.equal(load_file(str(target))["w"], torch.zeros(2))
    assert _only(tmp_path) == ["weights.safetensors"]


def test_atomic_path_success_replaces(tmp_path):
    target = tmp_path / "state.pt"
    target.write_bytes(b"stale")
    with atomic_path(target) as tmp:
        torch.save({"step": 3}, tmp)
    assert torch.load(target, weights_only=True) == {"step": 3}
    assert _only(tmp_path) == ["state.pt"]


def test_new_file_gets_ordinary_permissions(tmp_path):
    target = tmp_path / "fresh.txt"
    atomic_write_text(target, "hi")
    reference = tmp_path / "reference.txt"
    reference.write_text("hi")
    assert target.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_replaced_file_keeps_its_permissions(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    target = tmp_path / "shared.txt"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_json_keeps_order_and_unicode(tmp_path):
    target = tmp_path / "labels.json"
    atomic_write_json(target, {"zeta": 1, "alpha": "café"})
    text = target.read_text(encoding="utf-8")
    assert "café" in text and text.index("zeta") < text.index("alpha")
    assert json.loads(text) == {"zeta": 1, "alpha": "café"}
    assert text.endswith("\n") and '\n  "zeta": 1' in text
