"""Trainer checkpoints: one directory per pass, written atomically, verified by checksums, chained.

``<checkpoint_dir>/ckpt-<pass:09d>/`` holds whatever the trainer writes (dense weights, table
state, ``state.json``) plus ``CHECKSUMS.json`` (SHA-256 of every other file, and ``previous_pass``:
the checkpoint this one builds on, None for a base). A checkpoint is restorable when it and every
link back to its base verify: a *chain* is a base plus the increments after it. Each directory is
written with ``stream.storage.atomic_file.atomic_directory`` (temporary name, fsync, rename, fsync of
the parent): a crash leaves either the whole checkpoint or none. A checkpoint damaged later (bad
disk, truncation) fails its checksums and :meth:`CheckpointStore.latest_restorable` falls back to
the newest checkpoint whose chain is whole (the one before a damaged increment), with a warning.

Disk use: before a base is written, chains older than the newest ``keep_chains - 1`` are deleted
(a chain goes whole, base last, so no increment is ever left without its base); the store holds
at most ``keep_chains`` bases and ``keep_chains * (K - 1)`` increments for a base every K passes.
A run of N trainer processes keeps one store per rank and commits a pass only once every rank's
checkpoint of it is durable (``run_checkpoints``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from stream.storage.atomic_file import atomic_directory
from stream.storage.checksums import read_checksums, verify_checksums, write_checksums

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
_NAME = re.compile(r"^ckpt-(\d{9})$")


class CheckpointStore:
    """The checkpoint chains of a trainer in ``directory`` (at most ``keep_chains`` of them)."""

    def __init__(self, directory: str | os.PathLike[str], keep_chains: int) -> None:
        if keep_chains < 2:
            raise ValueError(f"keep_chains must be >= 2 (one whole while a base is written), got {keep_chains}")
        self.directory = Path(directory)
        self.keep_chains = keep_chains

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

    def save(self, pass_index: int, write: Callable[[Path], None], previous_pass: int | None = None) -> Path:
        """Create the checkpoint of ``pass_index`` on top of ``previous_pass`` (None: a base):
        ``write(tmp_dir)`` fills it, then it is sealed."""
        final = self.path_of(pass_index)
        # An existing checkpoint of the same pass is a damaged one we fell back past: replaced.
        with atomic_directory(final) as tmp:
            write(tmp)
            write_checksums(tmp, {"format": FORMAT_VERSION, "pass_index": pass_index, "previous_pass": previous_pass})
        return final

    def _sums(self, path: Path) -> dict | str:
        try:
            sums = read_checksums(path)
        except ValueError as error:
            return str(error)
        if sums.get("format") != FORMAT_VERSION:
            return f"format {sums.get('format')!r}, expected {FORMAT_VERSION}"
        return sums

    def verify(self, path: Path) -> str | None:
        """None if the checkpoint at ``path`` is complete and intact, else the reason."""
        return verify_checksums(path, FORMAT_VERSION)

    def previous_of(self, path: Path) -> int | None:
        """The pass of the checkpoint that the one at ``path`` builds on (None: a base or unreadable)."""
        sums = self._sums(path)
        return None if isinstance(sums, str) else sums.get("previous_pass")

    def latest_restorable(self) -> tuple[int, list[Path]] | None:
        """The newest checkpoint whose whole chain verifies, as (pass, [base, ..., itself]); each
        checkpoint skipped is named in a one-line warning."""
        verified: dict[int, str | None] = {}
        for pass_index, path in reversed(self.list()):
            chain = self.chain_of(pass_index, verified)
            if isinstance(chain, list):
                return pass_index, chain
            log.warning("checkpoint %s is damaged (%s); falling back to the previous one", path, chain)
        return None

    def chain_of(self, pass_index: int, verified: dict[int, str | None] | None = None) -> list[Path] | str:
        """The chain [base, ..., checkpoint of ``pass_index``] if every link verifies, else the reason
        it cannot be restored. ``verified`` caches verifications across calls (pass -> reason or None)."""
        verified = {} if verified is None else verified
        listing = dict(self.list())
        chain, link = [], pass_index
        while link is not None:
            if link not in listing:
                return f"the checkpoint of pass {link} it builds on is missing" if chain else "it is missing"
            if link not in verified:
                verified[link] = self.verify(listing[link])
            if verified[link] is not None:
                return verified[link] if link == pass_index else f"ckpt-{link:09d} it builds on is damaged"
            chain.append(listing[link])
            link = self.previous_of(listing[link])
        return chain[::-1]

    def bases(self) -> list[int]:
        """Passes of the bases in the store (oldest first)."""
        return [index for index, path in self.list() if _is_base(self._sums(path))]

    def latest_valid(self) -> tuple[int, Path] | None:
        """The newest restorable checkpoint as (pass, its own directory)."""
        found = self.latest_restorable()
        return None if found is None else (found[0], found[1][-1])

    def discard_after(self, pass_index: int) -> None:
        """Delete checkpoints newer than ``pass_index`` (damaged or unreachable ones a restart passed)."""
        for index, path in reversed(self.list()):
            if index > pass_index:
                shutil.rmtree(path, ignore_errors=True)

    def prune_before_base(self) -> None:
        """Delete the chains older than the newest ``keep_chains - 1`` (call before writing a base)."""
        bases = self.bases()
        if len(bases) < self.keep_chains - 1:
            return
        oldest_kept = bases[-(self.keep_chains - 1)]
        for index, path in reversed(self.list()):  # newest first: a crash midway leaves a shorter chain
            if index < oldest_kept:
                shutil.rmtree(path, ignore_errors=True)


def _is_base(sums: dict | str) -> bool:
    return isinstance(sums, dict) and sums.get("previous_pass") is None
