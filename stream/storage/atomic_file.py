"""Crash-safe files and directories: write a temporary next to the target, fsync it, rename it into place.

Readers see the old content or the new one, never a half-written file or directory. Files get mode
0666 and directories 0777 minus the umask (0644 / 0755 under the usual umask 022), as ``open`` and
``mkdir`` would give them: ``tempfile.mkstemp`` / ``mkdtemp`` make them 0600 / 0700, and a scoring
service under another user id could not read an export.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from stream.config.errors import UserError


def fsync_directory(directory: str | os.PathLike[str]) -> None:
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
        fsync_directory(root)


def _temporary_name(directory: Path, name: str) -> Path:
    """A fresh ``.<name>.<random>.tmp`` next to ``name`` (the pattern stale temporaries are found by)."""
    return directory / f".{name}.{secrets.token_hex(6)}.tmp"


def create_temporary_file(directory: Path, name: str) -> tuple[int, Path]:
    """A new temporary file for ``directory / name``: (open write descriptor, its path); mode 0666 - umask."""
    while True:
        path = _temporary_name(directory, name)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def create_temporary_directory(directory: Path, name: str) -> Path:
    """A new empty temporary directory for ``directory / name``; mode 0777 - umask."""
    while True:
        path = _temporary_name(directory, name)
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue


@contextmanager
def atomic_text_writer(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Yield a text file (UTF-8) that replaces ``path`` when the block ends without an exception.

    The temporary file lives in the target's folder (a rename is atomic only within one file
    system); on an exception it is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = create_temporary_file(target.parent, target.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)  # make the rename itself durable


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces the directory ``path`` when the block ends.

    On success every file under it is fsynced, an existing ``path`` is moved aside and deleted,
    the temporary is renamed to ``path`` and the parent fsynced. On an exception the temporary is
    removed and ``path`` is left untouched. Temporaries left by a writer of ``path`` that was
    killed (single writer per target assumed) are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    temp = create_temporary_directory(target.parent, target.name)
    try:
        yield temp
        fsync_tree(temp)
        if target.exists():
            # Moved aside rather than deleted first, so a crash here leaves a whole old copy.
            aside = create_temporary_directory(target.parent, target.name)
            target.rename(aside / target.name)
            temp.rename(target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            temp.rename(target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_directory(target.parent)  # make the rename itself durable


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove what writers killed mid-write left in ``directory`` (not below it): the hidden
    ``.<name>.*.tmp`` files and directories of :func:`atomic_text_writer`, :func:`atomic_directory`
    and ``embedding_store.npz_file``, which no later write of another target would ever clean.

    Call it only when no other writer can be at work there (under the directory's lock).
    Returns what was removed.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    removed = []
    for path in root.iterdir():
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def write_failures_as_user_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``what`` (a full disk, a quota, a file size limit, a
    read-only file system) into one line for the user; the atomic writers have already removed
    their temporaries, so the previous files are intact."""
    try:
        yield
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise UserError(
            f"cannot write {what}: {error.strerror or error}{where}; free space (or fix the directory) and "
            "restart: the trainer resumes from its last checkpoint"
        ) from None
