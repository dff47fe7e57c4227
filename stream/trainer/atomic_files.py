"""Crash-safe directories of files: fsync a tree, checksum it; single files via stream.atomic_file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stream.atomic_file import atomic_text_writer


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Persist a directory's entries (a rename is durable only after this)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: str | os.PathLike[str]) -> None:
    """fsync every file and directory under ``directory`` (files written by other libraries)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(root)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a mix."""
    with atomic_text_writer(path) as f:
        f.write(text)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_checksums(directory: str | os.PathLike[str]) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``directory`` (sorted)."""
    root = Path(directory)
    return {
        p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }
