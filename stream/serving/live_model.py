"""The model a server answers with, following the trainer's exports pass by pass.

``LiveModel.poll`` (any thread) looks at ``LATEST``; when it names a newer pass it reads and
verifies everything that pass needs — the table deltas that lead to it from the served pass and
its dense weights — and returns a :class:`PassUpdate`; when no chain of deltas leads there (a new
snapshot, pruned files) it loads the whole model of that pass (a :class:`Rebuild`). ``apply``
(the serving thread, between requests) then moves the live model in place: deleted rows removed,
changed rows upserted, dense weights copied, the pass index set, with nothing read from disk, so a
request is always scored by exactly one pass. A pass that cannot be read is never half-applied:
the previous pass keeps serving and :class:`UpdateFailed` says why.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_store.export import DELETED_FIELD, ROW_FIELDS, ExportFile, read_deltas_after
from stream.events.formats import Impression
from stream.scoring.exported_model import ExportedModel, ScoredImpression
from stream.scoring.model_files import ModelFileError, latest_pass, read_dense_state

log = logging.getLogger(__name__)


class UpdateFailed(Exception):
    """A newer pass exists but cannot be applied; ``reason`` is a metric label, the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class PassUpdate:
    """A newer pass read and verified, ready to apply in place: table deltas in order and dense state."""

    pass_index: int
    exported_at: float  # Unix seconds
    deltas: list[ExportFile]
    dense_state: dict[str, Any]

    @property
    def rows(self) -> tuple[int, int]:
        """(rows upserted, keys deleted) over all deltas."""
        upserted = sum(int(d.arrays["keys"].shape[0]) for d in self.deltas)
        deleted = sum(int(d.arrays[DELETED_FIELD].shape[0]) for d in self.deltas)
        return upserted, deleted


@dataclass
class Rebuild:
    """A newer pass loaded whole (its snapshot chain), to replace the live model."""

    pass_index: int
    exported_at: float
    model: ExportedModel


class LiveModel:
    """An :class:`ExportedModel` of ``model_dir`` kept at the pass ``LATEST`` names."""

    def __init__(self, model_dir: str | os.PathLike[str], model: ExportedModel, exported_at: float) -> None:
        self.model_dir = Path(model_dir)
        self.model = model
        self.exported_at = exported_at

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> LiveModel:
        """The model of the pass ``LATEST`` names now (a ``UserError`` when there is none)."""
        model = ExportedModel.load(model_dir)
        pass_dir = latest_pass(Path(model_dir))
        return cls(model_dir, model, _exported_at(pass_dir.path))

    @property
    def pass_index(self) -> int:
        """The pass being served."""
        return self.model.pass_index

    def poll(self) -> PassUpdate | Rebuild | None:
        """None while ``LATEST`` names the served pass; else the newer pass, read and verified.

        Safe to call from a worker thread while requests are served: it only reads files.
        """
        try:
            latest = latest_pass(self.model_dir)
        except ModelFileError as error:
            raise UpdateFailed(error.reason, str(error)) from None
        served = self.pass_index
        if latest.pass_index <= served:
            return None
        try:
            dense_state = read_dense_state(latest.path)
            deltas = self._deltas(latest.table_dirs, served, latest.pass_index)
        except ModelFileError as error:
            raise UpdateFailed(error.reason, f"pass {latest.pass_index} not applied: {error}") from None
        except (OSError, ValueError) as error:
            raise UpdateFailed("damaged", f"pass {latest.pass_index} not applied: {error}") from None
        exported_at = _exported_at(latest.path)
        if deltas is not None:
            return PassUpdate(latest.pass_index, exported_at, deltas, dense_state)
        try:
            model = ExportedModel.load(self.model_dir, latest.pass_index)
        except ModelFileError as error:
            raise UpdateFailed(error.reason, f"pass {latest.pass_index} not loaded: {error}") from None
        return Rebuild(latest.pass_index, exported_at, model)

    def _deltas(self, table_dirs: list[str], served: int, pass_index: int) -> list[ExportFile] | None:
        """The deltas from ``served`` to ``pass_index`` of every table directory (one, or one per shard
        of a table exported by N ranks: their keys are disjoint); None when any directory has none."""
        deltas: list[ExportFile] = []
        for name in table_dirs:
            chain = read_deltas_after(self.model_dir / name, served, pass_index)
            if chain is None:
                return None
            deltas += chain
        return deltas

    def apply(self, update: PassUpdate | Rebuild) -> tuple[float, float]:
        """Move to ``update``'s pass; call it between requests (nothing here reads a file).

        Returns the seconds spent on table rows and on dense weights (0 for a rebuild).
        """
        rows_s = dense_s = 0.0
        if isinstance(update, Rebuild):
            self.model = update.model
        else:
            started = time.perf_counter()
            trained = self.model.model
            for delta in update.deltas:
                trained.table.delete_keys(delta.arrays[DELETED_FIELD])
                trained.table.upsert_rows({name: delta.arrays[name] for name in ROW_FIELDS})
            rows_s = time.perf_counter() - started
            trained.load_dense_state(update.dense_state)
            dense_s = time.perf_counter() - started - rows_s
            self.model.pass_index = update.pass_index
        self.exported_at = update.exported_at
        return rows_s, dense_s

    def score(self, impressions: list[Impression]) -> tuple[int, list[ScoredImpression]]:
        """(pass index, probabilities of every task per impression), all from that one pass."""
        return self.pass_index, self.model.score(impressions)


def _exported_at(pass_dir: Path) -> float:
    """When a pass was exported: its directory's modification time (set by the atomic rename)."""
    try:
        return pass_dir.stat().st_mtime
    except OSError:
        return time.time()
