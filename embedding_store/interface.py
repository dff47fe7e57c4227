"""The embedding-table interface: what the training step, the trainer, the exporter and the
metrics use of a table, so that another implementation (a table sharded across trainer processes,
say) slots in without touching them.

``EmbeddingRows`` is the training step's view (``pepnet/`` depends on nothing else);
``EmbeddingTableInterface`` adds what the trainer loop needs between passes. Slots are opaque
int64 handles chosen by the table (-1 = no row); a slot from ``lookup(train=True)`` stays valid
until the next ``end_pass``. Times are event time in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedding_store.export import ExportRecord, TableExport
from embedding_store.stats import PassEndReport, TableStats
from embedding_store.table_checkpoint import TableCheckpoint


@runtime_checkable
class EmbeddingRows(Protocol):
    """Rows looked up, read and trained by a training step."""

    @property
    def dim(self) -> int:
        """Embedding width: float32 values per row."""
        ...

    def register_features(self, names: list[str]) -> None:
        """Name the features whose keys the table will hold (for per-feature counts and limits)."""
        ...

    def lookup(self, keys: np.ndarray, event_time_ms: int | np.ndarray, train: bool = True) -> np.ndarray:
        """int64 slots (shape of the uint64 ``keys``), -1 for no row; ``train=True`` may create rows,
        ``train=False`` changes nothing."""
        ...

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """float32 ``[*slots.shape, dim]``; slot -1 reads the default vector."""
        ...

    def apply_gradients(self, slots: np.ndarray, grads: Any) -> int:
        """Sparse optimizer step on ``slots`` with gradient rows ``grads`` (repeats summed, -1 ignored);
        returns the unique rows updated."""
        ...

    def record_feedback(self, slots: np.ndarray, positives: Any) -> None:
        """One show per occurrence in ``slots`` plus its positive label (feeds eviction scores)."""
        ...


@runtime_checkable
class EmbeddingTableInterface(EmbeddingRows, Protocol):
    """A table the trainer owns: rows plus pass-end maintenance, statistics, exports, checkpoints."""

    def end_pass(self, pass_index: int, event_time_ms: int) -> PassEndReport:
        """Score decay, expiry, per-feature limits and the byte budget, once per pass."""
        ...

    def stats(self) -> TableStats:
        """Bytes by component, rows, cumulative policy counters (for metrics and the run log)."""
        ...

    def export(self, model_dir: str | Path, pass_index: int) -> ExportRecord:
        """Write the rows changed since the last export (or a snapshot) for scoring."""
        ...

    def capture_export(self, model_dir: str | Path, pass_index: int) -> TableExport:
        """``export``'s rows copied out now, written later from any thread (``TableExport.write``)."""
        ...

    def save_state(self, path: str | Path) -> None:
        """Write the full exact state in one file (the table's own ``load_state`` reads it)."""
        ...

    def capture_checkpoint(self, pass_index: int, base: bool) -> TableCheckpoint:
        """Copy out a base (``base``, or no checkpoint yet) or what changed since the last checkpoint,
        in time proportional to what it carries; the result is written later, from any thread, and
        read back by the table's own ``load_checkpoint_chain(paths)`` (base, then increments)."""
        ...
