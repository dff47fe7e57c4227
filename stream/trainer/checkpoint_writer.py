"""Exports and checkpoints captured at a pass end and written by a background thread while the
next pass trains.

At the end of pass k the training thread captures what the export and the checkpoint need, in
time proportional to what changed (``capture_export`` and ``capture_checkpoint`` copy the changed
rows; the dense network and Adam are small and cloned whole), and hands both to
:class:`CheckpointWriter`. The writer thread writes the export (table delta, pass directory,
``LATEST``), then the checkpoint into :class:`CheckpointStore` (atomic directory, fsync,
checksums), and only then runs the pass's ``on_durable`` callback: the commit of the pass's offsets to the
consumer group, the run-log line, the checkpoint metric. At most one checkpoint is in flight:
the capture of pass k+1 waits until pass k is durable. A kill -9 at any moment leaves the last
durable checkpoint, and its offsets, as the truth a restart resumes from.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedding_store.table_checkpoint import BASE, TableCheckpoint
from monitoring.run_log import PassRecord
from stream.config.errors import UserError
from stream.storage.atomic_file import write_failures_as_user_errors
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.exporter import PassExport
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel, write_dense_state

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
TABLE_STATE_FILE = "table.npz"
DENSE_STATE_FILE = "dense.pt"


@dataclass
class PassCheckpoint:
    """Everything the checkpoint of one pass holds, copied out of the live model."""

    pass_index: int
    table: TableCheckpoint
    dense: dict[str, Any] | None  # cloned tensors: network, Adam, domain statistics, torch RNG (None: not ours)
    state: dict[str, Any]  # JSON-ready: topic, next offsets, manifest, pass record
    dedup: list[set[str]]  # the dedup window's passes (sets no longer changed), sorted when written
    on_durable: Callable[[], None] | None = None
    export: PassExport | None = None  # written first: an export never lags behind its checkpoint

    @property
    def previous_pass(self) -> int | None:
        return self.table.previous_pass

    def write(self, directory: Path) -> None:
        """Write the checkpoint's files into ``directory`` (the store seals it)."""
        self.table.write(directory / TABLE_STATE_FILE)
        if self.dense is not None:
            write_dense_state(self.dense, directory / DENSE_STATE_FILE)
        state = dict(self.state, dedup=[sorted(ids) for ids in self.dedup])
        (directory / STATE_FILE).write_text(json.dumps(state, sort_keys=True), encoding="utf-8")


def capture_pass_checkpoint(
    model: TrainingModel,
    manifest: PassManifest,
    record: PassRecord,
    topic: str,
    dedup: list[set[str]],
    base: bool,
    on_durable: Callable[[], None] | None,
    export: PassExport | None = None,
    with_dense: bool = True,
) -> PassCheckpoint:
    """Copy the checkpoint of ``manifest``'s pass out of ``model`` (a table base when ``base``; the
    dense state unless ``with_dense`` is false: rank r > 0 of N leaves it to rank 0)."""
    index = manifest.pass_index
    state = {
        "pass_index": index,
        "topic": topic,
        "next_offsets": {str(p): o for p, o in sorted(manifest.next_offsets().items())},
        "manifest": manifest.to_dict(),
        "pass_record": record.to_json(),
    }
    return PassCheckpoint(
        pass_index=index,
        table=model.table.capture_checkpoint(index, base=base),
        dense=model.dense_snapshot(with_optimizer=True) if with_dense else None,
        state=state,
        dedup=dedup,
        on_durable=on_durable,
        export=export,
    )


@dataclass
class PersistTiming:
    """Training-thread seconds a pass spent on capturing its export and its checkpoint, and waiting
    for the previous pass's to be durable (the writes themselves: ``WriteTiming``)."""

    pass_index: int
    export_s: float
    capture_s: float
    wait_s: float


@dataclass
class WriteTiming:
    """How long the writer took for one checkpoint (wall seconds) and what it wrote."""

    pass_index: int
    kind: str
    rows: int
    nbytes: int
    seconds: float  # the checkpoint
    export_seconds: float  # the export written before it


@dataclass
class CheckpointWriter:
    """One writer thread; :meth:`submit` waits while the previous checkpoint is still being written."""

    store: CheckpointStore
    timings: list[WriteTiming] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pending: PassCheckpoint | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, checkpoint: PassCheckpoint) -> float:
        """Queue ``checkpoint`` once the previous one is durable; returns the seconds waited for it."""
        waited = self.wait()
        with self._condition:
            self._pending = checkpoint
            self._condition.notify_all()
        return waited

    def wait(self) -> float:
        """Block until nothing is in flight (re-raising a failed write); returns the seconds waited."""
        started = time.perf_counter()
        with self._condition:
            self._condition.wait_for(lambda: self._pending is None or self._error is not None)
            if self._error is not None:
                raise self._error
        return time.perf_counter() - started

    def close(self) -> None:
        """Finish the checkpoint in flight and stop the thread (re-raises a failed write)."""
        try:
            self.wait()
        finally:
            with self._condition:
                self._closed = True
                self._condition.notify_all()
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                checkpoint = self._pending
            try:
                self._write(checkpoint)
            except BaseException as error:  # handed to the training thread, which re-raises it
                if not isinstance(error, UserError):  # a UserError is the one line the command prints
                    log.error("writing the checkpoint of pass %d failed: %s", checkpoint.pass_index, error)
                with self._condition:
                    self._error = error
                    self._condition.notify_all()
                return
            with self._condition:
                self._pending = None
                self._condition.notify_all()

    def _write(self, checkpoint: PassCheckpoint) -> None:
        started = time.perf_counter()
        if checkpoint.export is not None:
            with write_failures_as_user_errors(f"the export of pass {checkpoint.pass_index}"):
                checkpoint.export.write()
        exported = time.perf_counter()
        if checkpoint.table.kind == BASE:
            self.store.prune_before_base()
        with write_failures_as_user_errors(f"the checkpoint of pass {checkpoint.pass_index}"):
            self.store.save(checkpoint.pass_index, checkpoint.write, checkpoint.previous_pass)
        self.timings.append(
            WriteTiming(
                checkpoint.pass_index,
                checkpoint.table.kind,
                checkpoint.table.rows,
                checkpoint.table.nbytes,
                time.perf_counter() - exported,
                exported - started,
            )
        )
        if checkpoint.on_durable is not None:
            with write_failures_as_user_errors(f"the run log of pass {checkpoint.pass_index}"):
                checkpoint.on_durable()
