"""An exclusive lock on a directory, so that one process at a time writes into it.

``fcntl.flock`` on ``<directory>/.lock``: the kernel drops the lock when the holder exits, even
after ``kill -9``, so a lock is never stale. The holder's pid is written into the file for the
one-line message a second process gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".lock"


class DirectoryBusy(Exception):
    """Another process holds the lock; ``holder`` is its pid as it wrote it (may be empty)."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(f"{directory} is in use by process {holder or '(unknown)'}")
        self.directory = directory
        self.holder = holder


class DirectoryLock:
    """``with DirectoryLock(path):`` holds ``path``'s lock (the directory must exist);
    :class:`DirectoryBusy` if another process holds it."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> None:
        path = self.directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DirectoryBusy(self.directory, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
