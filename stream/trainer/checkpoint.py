"""Trainer checkpoints: one directory per pass, written atomically, verified by checksums.

``<checkpoint_dir>/ckpt-<pass:09d>/`` holds whatever the trainer writes (dense weights, table
state, ``state.json``) plus ``CHECKSUMS.json`` (SHA-256 of every other file). It is written with
``stream.storage.atomic_file.atomic_directory`` (temporary name, fsync, rename, fsync of the parent): a
crash leaves either the whole checkpoint or none. A checkpoint damaged later (bad disk, truncation) fails its
checksums and :meth:`CheckpointStore.latest_valid` falls back to the previous one with a warning.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from stream.storage.atomic_file import atomic_directory
from stream.storage.checksums import verify_checksums, write_checksums

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{9})$")


class CheckpointStore:
    """The last ``keep`` checkpoints of a trainer in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], keep: int) -> None:
        if keep <= 0:
            raise ValueError(f"keep must be > 0, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def path_of(self, pass_index: int) -> Path:
        """Where the checkpoint of ``pass_index`` lives (whether it exists or not)."""
        return self.directory / f"ckpt-{pass_index:09d}"

    def list(self) -> list[tuple[int, Path]]:
        """(pass index, path) of every checkpoint directory, oldest first (valid or not)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def save(self, pass_index: int, write: Callable[[Path], None]) -> Path:
        """Create the checkpoint of ``pass_index``: ``write(tmp_dir)`` fills it, then it is sealed."""
        final = self.path_of(pass_index)
        # An existing checkpoint of the same pass is a damaged one we fell back past: replaced.
        with atomic_directory(final) as tmp:
            write(tmp)
            write_checksums(tmp, {"format": FORMAT_VERSION, "pass_index": pass_index})
        self._prune()
        return final

    def verify(self, path: Path) -> str | None:
        """None if the checkpoint at ``path`` is complete and intact, else the reason."""
        return verify_checksums(path, FORMAT_VERSION)

    def latest_valid(self) -> tuple[int, Path] | None:
        """The newest intact checkpoint; damaged newer ones are skipped with a one-line warning."""
        for pass_index, path in reversed(self.list()):
            reason = self.verify(path)
            if reason is None:
                return pass_index, path
            log.warning("checkpoint %s is damaged (%s); falling back to the previous one", path, reason)
        return None

    def _prune(self) -> None:
        for _, path in self.list()[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)
