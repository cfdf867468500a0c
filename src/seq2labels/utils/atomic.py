"""Crash-safe file writes.

A training run can be killed at any moment (pre-emption, Ctrl-C, out of memory).
If that happens while ``best.safetensors`` or ``checkpoint.pt`` is being written,
a plain ``open(path, "wb")`` leaves a truncated file that poisons the next resume.
Every writer here therefore writes to a temporary file in the *same* folder
(so the final rename never crosses a file system), flushes it to disk, and only
then renames it over the target with :func:`os.replace`, which is atomic on POSIX
and Windows. Readers see either the complete old file or the complete new one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seq2labels.errors import ModelFormatError

logger = logging.getLogger(__name__)

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


@functools.lru_cache(maxsize=1)
def _process_umask() -> int:
    """Read the umask once; ``os.umask`` can only be read by setting it, so cache it."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(target: Path) -> int:
    """Permissions the replaced file should get.

    ``mkstemp`` creates files readable by the owner only; keep the mode of the file we
    replace, or give new files what a plain ``open()`` would have given them.
    """
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_process_umask()


def _fsync_file(path: Path) -> None:
    """Push a file written by someone else's writer (safetensors, torch.save) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; without it a power cut can undo the replace.

    Some platforms (Windows) cannot open a folder for fsync; there the rename is
    as durable as the OS makes it and we carry on.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("fsync of folder %s not supported", folder)
    finally:
        os.close(fd)


def _new_temp_sibling(target: Path) -> tuple[int, Path]:
    """Create an empty temp file next to ``target``, hidden and clearly named as ours."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    return fd, Path(name)


def _remove_quietly(path: Path) -> None:
    """Remove a temp file on the failure path without masking the original error."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - depends on the file system
        logger.warning("could not remove temp file %s: %s", path, exc)


def _publish(tmp: Path, target: Path) -> None:
    """Give the temp file its final permissions and rename it over the target."""
    os.chmod(tmp, _final_mode(target))
    os.replace(tmp, target)
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    target = Path(path)
    fd, tmp = _new_temp_sibling(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp file name for writers that insist on a file name.

    ``safetensors.torch.save_file`` and ``torch.save`` want a path, not bytes; they write
    to the yielded name and, only if the ``with`` block finishes without an exception,
    that file replaces ``path``. On any exception the temp file is removed and the old
    ``path`` is left untouched.
    """
    target = Path(path)
    fd, tmp = _new_temp_sibling(target)
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        _publish(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write text atomically (UTF-8 by default, no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, keeping key order and non-ASCII text readable."""
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


def swap_in_folder(staging: Path, path: Path) -> None:
    """Replace folder ``path`` by the complete folder ``staging`` (a sibling); if the swap fails the
    previous folder is put back, so readers see the old folder or the new one, never a mix."""
    if path.exists():
        if not path.is_dir():
            raise ModelFormatError(f"{path}: exists and is not a folder; refusing to overwrite it")
        backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        backup.rmdir()
        os.replace(path, backup)
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(backup, path)  # put the previous model back
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, path)
    fsync_dir(path.parent)
