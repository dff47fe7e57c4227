"""Incremental export files: a full snapshot every K passes, deltas in between, read back in order.

Files in ``model_dir`` (written atomically and checksummed by ``npz_file``):
``snapshot-<pass>.npz`` holds every live row; ``delta-<pass>.npz`` holds the rows changed since the
previous export and the keys deleted since then. Each file names the pass of the export it follows
(``previous_pass``), so a reader applies the newest snapshot, then the chain of deltas after it:
deletions first, then upserts. Rows carry key, weights, AdaGrad accumulator, update count and
creation tick: everything that scoring or a warm start needs; scores and last-seen ticks change
without training and live in trainer checkpoints (``save_state``) instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedding_store.npz_file import read_npz_checked, write_npz_atomic

ROW_FIELDS = ("keys", "weights", "accumulator", "updates", "created")
DELETED_FIELD = "deleted_keys"
_FILE_PATTERN = re.compile(r"^(snapshot|delta)-(\d{9})\.npz$")


@dataclass(frozen=True)
class ExportRecord:
    """One export written by ``EmbeddingTable.export``."""

    path: Path
    kind: str  # "snapshot" or "delta"
    pass_index: int
    rows: int
    deleted_keys: int


@dataclass
class TableExport:
    """One export copied out of a table (``capture_export``), written later from any thread."""

    model_dir: Path
    kind: str  # "snapshot" or "delta"
    pass_index: int
    previous_pass: int | None
    rows: dict[str, np.ndarray]  # ROW_FIELDS of the exported rows (copies)
    deleted_keys: np.ndarray
    meta: dict[str, Any]
    keep_snapshots: int

    def write(self) -> ExportRecord:
        """Write the export file atomically; a snapshot then prunes exports older than the newest
        ``keep_snapshots`` snapshots."""
        record = write_export(
            self.model_dir, self.kind, self.pass_index, self.previous_pass, self.rows, self.deleted_keys, self.meta
        )
        if self.kind == "snapshot":
            prune_exports(self.model_dir, self.keep_snapshots)
        return record


@dataclass
class ExportFile:
    """One export read back: its arrays (``ROW_FIELDS`` plus ``DELETED_FIELD``) and header."""

    path: Path
    kind: str
    pass_index: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def export_path(model_dir: Path, kind: str, pass_index: int) -> Path:
    """Path of the export of ``kind`` for ``pass_index`` (zero-padded so names sort by pass)."""
    if pass_index < 0 or pass_index >= 10**9:
        raise ValueError(f"pass_index must be in [0, 1e9), got {pass_index}")
    return Path(model_dir) / f"{kind}-{pass_index:09d}.npz"


def write_export(
    model_dir: Path,
    kind: str,
    pass_index: int,
    previous_pass: int | None,
    rows: dict[str, np.ndarray],
    deleted_keys: np.ndarray,
    meta: dict[str, Any],
) -> ExportRecord:
    """Write one export file atomically and return what was written."""
    path = export_path(model_dir, kind, pass_index)
    arrays = {name: rows[name] for name in ROW_FIELDS}
    arrays[DELETED_FIELD] = deleted_keys
    header = dict(meta, kind=kind, pass_index=pass_index, previous_pass=previous_pass)
    write_npz_atomic(path, arrays, header)
    return ExportRecord(path, kind, pass_index, int(rows["keys"].shape[0]), int(deleted_keys.shape[0]))


def _listing(model_dir: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in Path(model_dir).iterdir():
        match = _FILE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(2)), match.group(1), path))
    return sorted(found)


def read_export_chain(model_dir: Path, up_to_pass: int | None = None) -> list[ExportFile]:
    """The newest snapshot and the deltas that follow it, in order, verified and checksummed;
    files of passes after ``up_to_pass`` (when given) are ignored."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"model_dir {model_dir} is not a directory")
    listing = [entry for entry in _listing(model_dir) if up_to_pass is None or entry[0] <= up_to_pass]
    snapshots = [entry for entry in listing if entry[1] == "snapshot"]
    if not snapshots:
        limit = "" if up_to_pass is None else f" up to pass {up_to_pass}"
        raise ValueError(f"model_dir {model_dir} holds no snapshot-*.npz export{limit}")
    base_pass = snapshots[-1][0]
    chain = []
    for pass_index, kind, path in listing:
        if pass_index < base_pass or (kind == "snapshot" and pass_index != base_pass):
            continue
        arrays, meta = read_npz_checked(path)
        if chain and meta.get("previous_pass") != chain[-1].pass_index:
            raise ValueError(
                f"{path}: previous_pass must be {chain[-1].pass_index} (the export before it), "
                f"got {meta.get('previous_pass')}; the export chain is broken"
            )
        chain.append(ExportFile(path, kind, pass_index, arrays, meta))
    return chain


def read_deltas_after(model_dir: Path, after_pass: int, up_to_pass: int) -> list[ExportFile] | None:
    """The deltas that lead from the export of ``after_pass`` to the export of ``up_to_pass``, read
    and verified, in order; None when no such chain of deltas exists (a snapshot was written in
    between, or the files were pruned): the caller then reads the whole chain instead."""
    listing = [entry for entry in _listing(Path(model_dir)) if after_pass < entry[0] <= up_to_pass]
    if not listing or listing[-1][0] != up_to_pass or any(kind != "delta" for _, kind, _ in listing):
        return None
    chain: list[ExportFile] = []
    previous = after_pass
    for pass_index, kind, path in listing:
        arrays, meta = read_npz_checked(path)
        if meta.get("previous_pass") != previous:
            return None
        chain.append(ExportFile(path, kind, pass_index, arrays, meta))
        previous = pass_index
    return chain


def prune_exports(model_dir: Path, keep_snapshots: int) -> list[Path]:
    """Delete exports older than the newest ``keep_snapshots`` snapshots; return what was deleted."""
    listing = _listing(model_dir)
    snapshots = [entry[0] for entry in listing if entry[1] == "snapshot"]
    if len(snapshots) <= keep_snapshots:
        return []
    oldest_kept = snapshots[-keep_snapshots]
    removed = [path for pass_index, _, path in listing if pass_index < oldest_kept]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def exported_passes(model_dir: Path) -> list[int]:
    """Pass indices of every export file (snapshot or delta) in ``model_dir``, in increasing order."""
    return [pass_index for pass_index, _, _ in _listing(model_dir)] if Path(model_dir).is_dir() else []
