"""One embedding table over N trainer processes, sharded by key hash (``sharding.shard_of``).

Rank r holds the rows of the keys it owns in a local :class:`EmbeddingTable` (its shard, with
1/N of the budget and of every feature limit: eviction, admission, limits and expiry run there).
The table implements :class:`EmbeddingTableInterface`, so a training step uses it unchanged:

* ``lookup``: the keys travel to their owners (counts, then keys with their event times), each
  owner looks them up in its shard (creating rows when ``train``) and answers with the slot and
  the current row of each key; the caller gets *handles* (int64, -1 = no row) naming
  (owner, slot) pairs, valid until the next ``end_pass`` as slots are.
* ``gather`` right after a ``lookup`` reads the rows that came back with it (no communication);
  any other ``gather`` fetches the rows from their owners.
* ``apply_gradients`` / ``record_feedback``: gradient rows and labels travel to the owners, which
  sum the repeats (from every rank, in rank order) and run AdaGrad / the score update there.
* ``end_pass``, ``stats``, ``export``: each shard does its own, the results are summed
  (``stats_by_shard`` keeps the per-shard figures); ``export`` writes ``<dir>/shard-<r>-of-<N>/``
  and returns once every shard is written. ``capture_export``, ``save_state`` and
  ``capture_checkpoint`` are this shard's only (each rank writes its own).

Every method except ``dim``, ``register_features``, ``capture_export``, ``save_state`` and
``capture_checkpoint`` is a collective: all ranks call them in the same order (a training step
does). A key looked up by k ranks in the same step counts k sightings toward admission (one per
rank's batch).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from embedding_store.config import TableConfig
from embedding_store.export import ExportRecord, TableExport
from embedding_store.inputs import as_key_array, event_ticks, feedback_labels, gradient_rows, to_numpy
from embedding_store.shard_exchange import ShardExchange
from embedding_store.sharding import shard_config, shard_dir_name, shard_of
from embedding_store.stats import PassEndReport, TableStats
from embedding_store.table import EmbeddingTable
from embedding_store.table_checkpoint import TableCheckpoint


class ShardedEmbeddingTable:
    """This rank's shard (``local``) plus the exchange that reaches the others; see the module docstring."""

    def __init__(self, local: EmbeddingTable, exchange: ShardExchange) -> None:
        self.local = local
        self.exchange = exchange
        self.shard, self.shards = exchange.rank, exchange.world_size
        self._owner = np.zeros(0, dtype=np.int64)  # per handle
        self._slot = np.zeros(0, dtype=np.int64)  # per handle: the slot in the owner's shard
        self._handles = 0
        self._latest: tuple[int, np.ndarray] | None = None  # (first handle, rows) of the last lookup
        self._default_row = local.gather(np.array([-1], dtype=np.int64))[0]
        self.last_shard_stats: list[TableStats] = []

    @classmethod
    def create(cls, config: TableConfig, exchange: ShardExchange, seed: int | None = None) -> ShardedEmbeddingTable:
        """An empty table: this rank's shard gets its share of ``config`` (see ``shard_config``)."""
        local_config = shard_config(config, exchange.rank, exchange.world_size)
        try:
            local = EmbeddingTable(local_config, seed)
        except ValueError as error:
            raise ValueError(
                f"budget_bytes {config.budget_bytes} split over {exchange.world_size} shards: {error}"
            ) from None
        return cls(local, exchange)

    # ----------------------------------------------------------------- local facts
    @property
    def dim(self) -> int:
        """Embedding width: float32 values per row."""
        return self.local.dim

    def register_features(self, names: list[str]) -> None:
        """Name the features whose keys the table holds (every rank registers the same names)."""
        self.local.register_features(names)

    # ----------------------------------------------------------------- handles
    def _register(self, owners: np.ndarray, slots: np.ndarray) -> np.ndarray:
        n = owners.shape[0]
        if self._handles + n > self._owner.shape[0]:
            size = max(1024, 2 * (self._handles + n))
            self._owner = np.resize(self._owner, size)
            self._slot = np.resize(self._slot, size)
        first = self._handles
        self._owner[first : first + n] = owners
        self._slot[first : first + n] = slots
        self._handles += n
        return np.arange(first, first + n, dtype=np.int64)

    def _resolve(self, handles: Any) -> np.ndarray:
        flat = to_numpy(handles)
        if flat.dtype.kind not in "iu":
            raise ValueError(f"slots must be an integer array, got dtype {flat.dtype}")
        flat = flat.astype(np.int64, copy=False).reshape(-1)
        if flat.shape[0] and (flat.min() < -1 or flat.max() >= self._handles):
            raise ValueError(
                f"slots must be -1 or handles of this pass's lookups [0, {self._handles}), "
                f"got values in [{flat.min()}, {flat.max()}]"
            )
        return flat

    # ----------------------------------------------------------------- lookup / gather
    def lookup(self, keys: np.ndarray, event_time_ms: int | np.ndarray, train: bool = True) -> np.ndarray:
        """Handles (shape of ``keys``) of uint64 ``keys``; -1 = unknown / not admitted / padding 0.
        Each owner looks its keys up in its shard with the caller's ``event_time_ms`` (scalar or per key)."""
        flat = as_key_array(keys)
        event_ticks(event_time_ms, flat.shape[0], self.local.config.time_resolution_ms)  # checked here, not remotely
        times = np.broadcast_to(np.asarray(event_time_ms, dtype=np.int64).reshape(-1), flat.shape)
        positions = np.flatnonzero(flat != 0)
        owners = shard_of(flat[positions], self.shards)
        route = self.exchange.route(owners)
        request = np.empty(positions.shape[0], dtype=[("key", "<u8"), ("time", "<i8")])
        request["key"], request["time"] = flat[positions], times[positions]
        received = self.exchange.forward(route, request)
        received_times = received["time"]
        same_time = received_times.shape[0] and (received_times == received_times[0]).all()
        slots = self.local.lookup(
            np.ascontiguousarray(received["key"]), int(received_times[0]) if same_time else received_times, train
        )
        reply = np.empty(slots.shape[0], dtype=[("slot", "<i8"), ("row", "<f4", (self.dim,))])
        reply["slot"], reply["row"] = slots, self.local.gather(slots)
        answer = self.exchange.backward(route, reply)
        has_row = answer["slot"] >= 0
        handles = np.full(flat.shape[0], -1, dtype=np.int64)
        new = self._register(owners[has_row], answer["slot"][has_row])
        handles[positions[has_row]] = new
        self._latest = (int(new[0]) if new.shape[0] else self._handles, np.ascontiguousarray(answer["row"][has_row]))
        return handles.reshape(np.shape(keys))

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """float32 ``[*slots.shape, dim]`` rows of handles; -1 reads the shared default vector."""
        flat = self._resolve(slots)
        latest, self._latest = self._latest, None
        out = np.empty((flat.shape[0], self.dim), dtype=np.float32)
        known = flat >= 0
        out[~known] = self._default_row
        if latest is not None:
            first, rows = latest
            position = flat[known] - first
            if position.shape[0] and (position.min() < 0 or position.max() >= rows.shape[0]):
                raise ValueError("a gather right after a lookup reads that lookup's handles only")
            out[known] = rows[position]
        else:
            out[known] = self._fetch(flat[known])
        return out.reshape((*np.shape(slots), self.dim))

    def _fetch(self, handles: np.ndarray) -> np.ndarray:
        route = self.exchange.route(self._owner[handles])
        received = self.exchange.forward(route, self._slot[handles])
        return self.exchange.backward(route, self.local.gather(received))

    # ----------------------------------------------------------------- training
    def apply_gradients(self, slots: np.ndarray, grads: Any) -> int:
        """Sparse AdaGrad at the owners on handles ``slots`` with float32 ``grads`` [*slots.shape, dim];
        returns the unique rows this shard updated (repeats from every rank summed first)."""
        flat = self._resolve(slots)
        self._latest = None
        gradients = gradient_rows(grads, flat.shape[0], self.dim)
        known = np.flatnonzero(flat >= 0)
        payload = np.empty(known.shape[0], dtype=[("slot", "<i8"), ("grad", "<f4", (self.dim,))])
        payload["slot"], payload["grad"] = self._slot[flat[known]], gradients[known]
        received = self.exchange.forward(self.exchange.route(self._owner[flat[known]]), payload)
        return self.local.apply_gradients(
            np.ascontiguousarray(received["slot"]), np.ascontiguousarray(received["grad"])
        )

    def record_feedback(self, slots: np.ndarray, positives: Any) -> None:
        """One show per occurrence in ``slots`` plus its positive label, applied at the owners."""
        slot_array, labels = feedback_labels(slots, positives)
        flat = self._resolve(slot_array)
        self._latest = None
        known = np.flatnonzero(flat >= 0)
        payload = np.empty(known.shape[0], dtype=[("slot", "<i8"), ("positive", "<f4")])
        payload["slot"], payload["positive"] = self._slot[flat[known]], labels.reshape(-1)[known]
        received = self.exchange.forward(self.exchange.route(self._owner[flat[known]]), payload)
        self.local.record_feedback(np.ascontiguousarray(received["slot"]), np.ascontiguousarray(received["positive"]))

    # ----------------------------------------------------------------- pass end, statistics
    def end_pass(self, pass_index: int, event_time_ms: int) -> PassEndReport:
        """Each shard's pass-end maintenance; returns the sum over shards (handles expire here)."""
        report = self.local.end_pass(pass_index, event_time_ms)
        self._handles = 0
        self._latest = None
        parts = self.exchange.all_gather_bytes(json.dumps(dataclasses.asdict(report)).encode())
        return PassEndReport.total([PassEndReport(**json.loads(part)) for part in parts])

    def stats(self) -> TableStats:
        """The sum of every shard's statistics (``last_shard_stats`` keeps each shard's)."""
        return TableStats.total(self.stats_by_shard())

    def stats_by_shard(self) -> list[TableStats]:
        """Every shard's statistics, by shard."""
        parts = self.exchange.all_gather_bytes(json.dumps(dataclasses.asdict(self.local.stats())).encode())
        self.last_shard_stats = [TableStats.from_json(json.loads(part)) for part in parts]
        return self.last_shard_stats

    # ----------------------------------------------------------------- files
    def export(self, model_dir: str | Path, pass_index: int) -> ExportRecord:
        """Write this shard's export into ``model_dir/shard-<r>-of-<N>/``; returns once every shard wrote."""
        record = self.local.export(Path(model_dir) / shard_dir_name(self.shard, self.shards), pass_index)
        self.exchange.barrier()
        return record

    def capture_export(self, model_dir: str | Path, pass_index: int) -> TableExport:
        """This shard's export (into ``model_dir/shard-<r>-of-<N>/``) copied out now, written later
        from any thread; the caller publishes the pass once every rank wrote its shard."""
        return self.local.capture_export(Path(model_dir) / shard_dir_name(self.shard, self.shards), pass_index)

    def save_state(self, path: str | Path) -> None:
        """Write this shard's full exact state (``EmbeddingTable.load_state`` reads it back)."""
        self.local.save_state(path)

    def capture_checkpoint(self, pass_index: int, base: bool) -> TableCheckpoint:
        """This shard's checkpoint (a base, or what changed since its last one); each rank writes its
        own and ``EmbeddingTable.load_checkpoint_chain`` reads a shard's chain back."""
        return self.local.capture_checkpoint(pass_index, base)
