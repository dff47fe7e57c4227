"""Atomic, checksummed ``.npz`` files holding named arrays plus a JSON header; never pickled."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_META = "__meta__"
_FORMAT = "pepnet-embedding-store/1"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.data)
    return digest.hexdigest()


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and ``meta`` to ``path``: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(meta, format=_FORMAT, checksum=_checksum(arrays))
    payload = dict(arrays)
    payload[_META] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    fd, temp_name = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` next to ``path``, mode 0666 minus the umask (``mkstemp`` makes
    0600 files that a scoring service under another user id could not read)."""
    while True:
        temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue


def read_npz_checked(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and header of a file written by ``write_npz_atomic``; ValueError if corrupt."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable npz file ({exc})") from exc
    if _META not in arrays:
        raise ValueError(f"{path}: missing {_META} header")
    meta = json.loads(arrays.pop(_META).tobytes().decode())
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: format must be {_FORMAT!r}, got {meta.get('format')!r}")
    if meta.get("checksum") != _checksum(arrays):
        raise ValueError(f"{path}: checksum mismatch, the file is corrupt")
    return arrays, meta
