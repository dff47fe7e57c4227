"""Trainer checkpoints: one directory per pass, written atomically, verified by checksums.

``<checkpoint_dir>/ckpt-<pass:09d>/`` holds whatever the trainer writes (dense weights, table
state, ``state.json``) plus ``CHECKSUMS.json`` (SHA-256 of every other file). It is written under
a temporary name, fsynced, renamed into place and the parent directory fsynced: a crash leaves
either the whole checkpoint or none. A checkpoint damaged later (bad disk, truncation) fails its
checksums and :meth:`CheckpointStore.latest_valid` falls back to the previous one with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from stream.trainer.atomic_files import fsync_dir, fsync_tree, tree_checksums

log = logging.getLogger(__name__)

CHECKSUMS_FILE = "CHECKSUMS.json"
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
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        final = self.path_of(pass_index)
        tmp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        tmp.mkdir()
        write(tmp)
        sums = {"format": FORMAT_VERSION, "pass_index": pass_index, "files": tree_checksums(tmp)}
        (tmp / CHECKSUMS_FILE).write_text(json.dumps(sums, indent=1, sort_keys=True), encoding="utf-8")
        fsync_tree(tmp)
        if final.exists():
            # A damaged checkpoint of the same pass (we fell back past it): replace it.
            trash = self.directory / f".trash-{final.name}-{os.getpid()}"
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
        fsync_dir(self.directory)
        self._prune()
        return final

    def verify(self, path: Path) -> str | None:
        """None if the checkpoint at ``path`` is complete and intact, else the reason."""
        try:
            sums = json.loads((path / CHECKSUMS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"{CHECKSUMS_FILE} unreadable ({error.__class__.__name__})"
        if sums.get("format") != FORMAT_VERSION:
            return f"format {sums.get('format')!r}, expected {FORMAT_VERSION}"
        actual = tree_checksums(path)
        actual.pop(CHECKSUMS_FILE, None)
        expected = sums.get("files", {})
        for name in sorted(set(expected) | set(actual)):
            if name not in actual:
                return f"{name} is missing"
            if name not in expected:
                return f"{name} is not listed in {CHECKSUMS_FILE}"
            if actual[name] != expected[name]:
                return f"{name} fails its checksum"
        return None

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

    def _remove_temporaries(self) -> None:
        for path in self.directory.iterdir():
            if path.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(path, ignore_errors=True)
