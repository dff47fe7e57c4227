"""The global shared embedding table: every sparse ID in preallocated arrays under a byte budget."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedding_store.adagrad import adagrad_step, sum_duplicate_gradients
from embedding_store.admission import CountingFilter, admission_probability_draw
from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason, lowest_score_rows, ttl_expired, under_updated
from embedding_store.export import (
    DELETED_FIELD,
    ROW_FIELDS,
    ExportRecord,
    prune_exports,
    read_export_chain,
    write_export,
)
from embedding_store.index import OpenAddressingIndex
from embedding_store.keys import feature_tag, key_tags
from embedding_store.layout import FILTER_ROWS, TableLayout
from embedding_store.npz_file import read_npz_checked, write_npz_atomic
from embedding_store.row_access import put_rows
from embedding_store.row_init import initial_weights
from embedding_store.score import add_feedback, decay_scores
from embedding_store.stats import PassEndReport, TableStats

_MAX_TICK = np.iinfo(np.uint32).max
_MAX_UPDATES = np.iinfo(np.uint16).max
_REJECTION_REASONS = ("count", "probability", "full")
_DIRTY = np.uint8(1)  # row changed since the last export
_TOUCHED = np.uint8(2)  # row looked up (train=True) since the last end_pass
# Arrays of save_state, by attribute name; their shapes are fixed by the layout.
_STATE_ARRAYS = (
    "_keys",
    "_weights",
    "_accumulator",
    "_score",
    "_last_seen",
    "_created",
    "_updates",
    "_flags",
    "_free",
    "_deletion_log",
)


class EmbeddingTable:
    """Sparse embedding rows keyed by uint64, trained with sparse AdaGrad, bounded by a byte budget.

    Slots returned by ``lookup(train=True)`` stay valid until the next ``end_pass``: rows are
    deleted only there, or, when new keys find the table full mid-pass, among the rows *not* looked
    up since the last pass end whose score is no higher than a new row's after one show (slots of
    ``train=False`` lookups are valid until the next training lookup). Times are event time in ms,
    stored as uint32 ticks of ``config.time_resolution_ms``.
    """

    def __init__(self, config: TableConfig, seed: int | None = None) -> None:
        self.config = config
        self.seed = config.seed if seed is None else seed
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        self.layout = TableLayout.from_config(config)
        capacity, dim = self.layout.capacity, config.dim
        # Two spare zero keys: the index reads row_keys[-1] / [-2] for empty / tombstone buckets.
        self._keys = np.zeros(capacity + 2, dtype=np.uint64)
        self._weights = np.zeros((capacity + 1, dim), dtype=np.float32)  # last row: the default vector
        self._weights[capacity] = config.default_value
        accumulator_shape = (capacity,) if config.row_wise_adagrad else (capacity, dim)
        self._accumulator = np.zeros(accumulator_shape, dtype=np.float32)
        self._score = np.full(capacity, np.inf, dtype=np.float32)  # +inf marks a free row
        self._last_seen = np.zeros(capacity, dtype=np.uint32)
        self._created = np.zeros(capacity, dtype=np.uint32)
        self._updates = np.zeros(capacity, dtype=np.uint16)
        self._flags = np.zeros(capacity, dtype=np.uint8)  # _DIRTY | _TOUCHED bits
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int32)  # stack: slot 0 pops first
        self._free_count = capacity
        self._deletion_log = np.zeros(self.layout.deletion_log_capacity, dtype=np.uint64)
        self._log_count = 0
        self._log_overflow = False
        max_fill = min(0.9, config.index_load_factor + 0.25)
        self._index = OpenAddressingIndex(self.layout.n_buckets, self._keys, capacity, max_fill)
        self._filter = (
            CountingFilter(FILTER_ROWS, self.layout.filter_width, self.seed) if self.layout.filter_width else None
        )
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._tag_names: dict[int, str] = {}
        self.register_features([*config.features, *config.feature_limits])
        self._limits_by_tag = {feature_tag(name): limit for name, limit in config.feature_limits.items()}
        self._rows_per_tag: dict[int, int] = {}
        self._evictions = {reason.value: 0 for reason in EvictionReason}
        self._rejections = dict.fromkeys(_REJECTION_REASONS, 0)
        self._admissions = 0
        self._lookups = 0
        self._updated_rows = 0
        self._passes_ended = 0
        self._export_dir: str | None = None
        self._last_export_pass: int | None = None
        self._last_snapshot_pass: int | None = None

    # ----------------------------------------------------------------- features
    def register_features(self, names: list[str]) -> None:
        """Name the features whose keys the table will hold (for rows_per_feature and limits)."""
        for name in names:
            tag = feature_tag(name)
            known = self._tag_names.get(tag)
            if known is not None and known != name:
                raise ValueError(f"features {known!r} and {name!r} share key tag 0x{tag:04x}; rename one of them")
            self._tag_names[tag] = name

    def _feature_name(self, tag: int) -> str:
        return self._tag_names.get(tag, f"tag:0x{tag:04x}")

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Embedding width: float32 values per row."""
        return self.config.dim

    @property
    def capacity(self) -> int:
        """Most rows the preallocated arrays can hold."""
        return self.layout.capacity

    def __len__(self) -> int:
        return self.layout.capacity - self._free_count

    # ----------------------------------------------------------------- lookup
    def lookup(self, keys: np.ndarray, event_time_ms: int | np.ndarray, train: bool = True) -> np.ndarray:
        """int64 slots (shape of ``keys``) of uint64 ``keys``; -1 = unknown / not admitted / padding 0.

        With ``train=True`` a missing key counts one sighting toward admission and gets a row once
        admitted; found keys get their last-seen time raised to ``event_time_ms`` (scalar, or one
        per key). ``train=False`` changes nothing.
        """
        flat = _as_key_array(keys)
        slots = self._index.find(flat)
        self._lookups += flat.shape[0]
        if not train:
            return slots.reshape(np.shape(keys))
        ticks = self._ticks(event_time_ms, flat.shape[0])
        found = slots >= 0
        found_slots = slots[found]
        # Touch found rows before admitting new ones: a mid-pass eviction must not pick them.
        self._flags[found_slots] = self._flags[found_slots] | _TOUCHED
        if isinstance(ticks, int):
            self._last_seen[found_slots] = np.maximum(self._last_seen[found_slots], np.uint32(ticks))
        else:
            np.maximum.at(self._last_seen, found_slots, ticks[found])
        missing = np.flatnonzero(~found & (flat != 0))
        if missing.shape[0]:
            self._admit(flat, slots, missing, ticks)
        return slots.reshape(np.shape(keys))

    def _ticks(self, event_time_ms: int | np.ndarray, n: int) -> int | np.ndarray:
        resolution = self.config.time_resolution_ms
        if np.ndim(event_time_ms) == 0:
            ms = int(event_time_ms)
            if not 0 <= ms // resolution <= _MAX_TICK:
                raise ValueError(f"event_time_ms must be in [0, {_MAX_TICK * resolution}], got {ms}")
            return ms // resolution
        ms_array = np.asarray(event_time_ms).reshape(-1)
        if ms_array.shape[0] != n or ms_array.dtype.kind not in "iu":
            raise ValueError(
                f"event_time_ms must be an int or an int array with one entry per key ({n}), "
                f"got dtype {ms_array.dtype} shape {np.shape(event_time_ms)}"
            )
        ticks = ms_array.astype(np.int64) // resolution
        if ticks.shape[0] and (ticks.min() < 0 or ticks.max() > _MAX_TICK):
            raise ValueError(f"event_time_ms must be in [0, {_MAX_TICK * resolution}]")
        return ticks.astype(np.uint32)

    def _admit(self, flat: np.ndarray, slots: np.ndarray, missing: np.ndarray, ticks: int | np.ndarray) -> None:
        unique, inverse, counts = np.unique(flat[missing], return_inverse=True, return_counts=True)
        admitted = np.ones(unique.shape[0], dtype=bool)
        prior_sightings = np.zeros(unique.shape[0], dtype=np.int64)
        if self._filter is not None:
            estimate = self._filter.add(unique, counts)
            admitted = estimate >= self.config.admission_min_count
            prior_sightings = np.maximum(estimate - counts, 0)
            self._rejections["count"] += int(unique.shape[0] - np.count_nonzero(admitted))
        if self.config.admission_probability < 1.0:
            candidates = np.flatnonzero(admitted)
            drawn = admission_probability_draw(self._rng, counts[candidates], self.config.admission_probability)
            admitted[candidates[~drawn]] = False
            self._rejections["probability"] += int(np.count_nonzero(~drawn))
        chosen = np.flatnonzero(admitted)
        if chosen.shape[0] > self._free_count:
            self._evict_untouched(chosen.shape[0] - self._free_count)
        if chosen.shape[0] > self._free_count:
            # Every row is in use this pass: keep the keys seen most often in this batch.
            by_count = chosen[np.argsort(-counts[chosen], kind="stable")]
            self._rejections["full"] += int(chosen.shape[0] - self._free_count)
            chosen = np.sort(by_count[: self._free_count])
        if chosen.shape[0] == 0:
            return
        if isinstance(ticks, int):
            created: int | np.ndarray = ticks
            last_seen: int | np.ndarray = ticks
        else:
            first_tick = np.full(unique.shape[0], _MAX_TICK, dtype=np.uint32)
            np.minimum.at(first_tick, inverse, ticks[missing])
            last_tick = np.zeros(unique.shape[0], dtype=np.uint32)
            np.maximum.at(last_tick, inverse, ticks[missing])
            created, last_seen = first_tick[chosen], last_tick[chosen]
        unique_slots = np.full(unique.shape[0], -1, dtype=np.int64)
        new_slots = self._allocate(unique[chosen], created)
        self._last_seen[new_slots] = last_seen
        # Sightings the filter counted before the row existed are credited to its score.
        self._score[new_slots] += np.float32(self.config.show_weight) * prior_sightings[chosen].astype(np.float32)
        unique_slots[chosen] = new_slots
        slots[missing] = unique_slots[inverse]

    def _evict_untouched(self, shortfall: int) -> None:
        """Make room mid-pass: delete the lowest-score rows not looked up since the last pass end
        and worth no more than a new row after one show, at least ``shortfall`` of them (if there
        are that many) and down to the low watermark (reason: budget)."""
        untouched = (self._flags & _TOUCHED) == 0
        new_row_score = np.float32(self.config.initial_score) + np.float32(self.config.show_weight)
        candidates = np.flatnonzero(untouched & (self._keys[: self.capacity] != 0) & (self._score <= new_row_score))
        to_low_watermark = len(self) - self.layout.rows_within(self.config.low_watermark * self.config.budget_bytes)
        count = min(candidates.shape[0], max(shortfall, to_low_watermark))
        self._delete(lowest_score_rows(self._score, count, candidates), EvictionReason.BUDGET, None)

    def _allocate(self, keys: np.ndarray, created: int | np.ndarray) -> np.ndarray:
        """Fresh rows for distinct absent ``keys``: new weights, zero optimizer state, dirty, touched."""
        n = keys.shape[0]
        top = self._free_count
        slots = self._free[top - n : top][::-1].astype(np.int64)
        self._free_count -= n
        self._keys[slots] = keys
        put_rows(self._weights, slots, initial_weights(keys, self.dim, self.seed, self.config.init_range))
        self._accumulator[slots] = 0.0
        self._score[slots] = self.config.initial_score
        self._last_seen[slots] = created
        self._created[slots] = created
        self._updates[slots] = 0
        self._flags[slots] = _DIRTY | _TOUCHED
        self._index.insert(keys, slots)
        self._count_rows_by_tag(keys, +1)
        self._admissions += n
        return slots

    def _count_rows_by_tag(self, keys: np.ndarray, sign: int) -> None:
        counts = np.bincount(key_tags(keys).astype(np.int64))  # tags < 2**16: no sort needed
        tags = np.flatnonzero(counts)
        for tag, count in zip(tags.tolist(), counts[tags].tolist(), strict=True):
            remaining = self._rows_per_tag.get(tag, 0) + sign * count
            if remaining:
                self._rows_per_tag[tag] = remaining
            else:
                self._rows_per_tag.pop(tag, None)

    # ----------------------------------------------------------------- read / train
    def gather(self, slots: np.ndarray) -> np.ndarray:
        """float32 [*slots.shape, dim] rows of ``slots``; -1 reads the shared default vector."""
        flat = _as_slot_array(slots, self.capacity)
        rows = self._weights.take(np.where(flat < 0, self.capacity, flat), axis=0)
        return rows.reshape((*np.shape(slots), self.dim))

    def apply_gradients(self, slots: np.ndarray, grads: Any) -> int:
        """Sparse AdaGrad on ``slots`` with float32 ``grads`` [*slots.shape, dim] (numpy or torch).

        Gradients of repeated slots are summed first; -1 slots are ignored. Returns unique rows
        updated (each gets its update count raised and is marked dirty for the next export).
        """
        flat = _as_slot_array(slots, self.capacity)
        gradients = _to_numpy(grads).astype(np.float32, copy=False)
        if gradients.size != flat.shape[0] * self.dim:
            raise ValueError(
                f"grads must have one row of {self.dim} per slot ({flat.shape[0]}), got shape {np.shape(grads)}"
            )
        gradients = gradients.reshape(-1, self.dim)
        known = flat >= 0
        if not known.all():
            flat, gradients = flat[known], gradients[known]
        unique, summed = sum_duplicate_gradients(flat, gradients)
        adagrad_step(
            self._weights,
            self._accumulator,
            unique,
            summed,
            self.config.learning_rate,
            self.config.initial_accumulator,
        )
        self._updates[unique] = np.minimum(self._updates[unique], _MAX_UPDATES - 1) + 1
        self._flags[unique] |= _DIRTY
        self._updated_rows += unique.shape[0]
        return int(unique.shape[0])

    def record_feedback(self, slots: np.ndarray, positives: Any) -> None:
        """Raise feature scores: one show per occurrence in ``slots`` plus its positive label.

        ``positives`` has the shape of ``slots``, or one entry per row of a 2-D ``slots`` [B, S].
        """
        slot_array = np.asarray(slots)
        labels = _to_numpy(positives)
        if slot_array.ndim == 2 and labels.shape == (slot_array.shape[0],):
            labels = np.broadcast_to(labels[:, None], slot_array.shape)
        if labels.shape != slot_array.shape:
            raise ValueError(
                f"positives must have the shape of slots {slot_array.shape} (or [B] for [B, S]), got {labels.shape}"
            )
        flat = _as_slot_array(slot_array, self.capacity)
        add_feedback(self._score, flat, labels.reshape(-1), self.config.show_weight, self.config.positive_weight)

    # ----------------------------------------------------------------- pass end
    def end_pass(self, pass_index: int, event_time_ms: int) -> PassEndReport:
        """Decay scores, then delete expired, under-updated, over-limit and over-budget rows.

        Order: TTL (unseen for ``ttl_ms``), min-updates (older than the grace age with fewer than
        ``min_updates`` updates), per-feature limits (lowest scores of that feature), byte budget
        (above the high watermark: lowest scores until the low watermark).
        """
        started = time.perf_counter()
        rows_before = len(self)
        now = self._ticks(event_time_ms, 1)
        assert isinstance(now, int)
        evicted = dict.fromkeys(self._evictions, 0)
        decay_scores(self._score, self.config.score_decay)
        live = self._keys[: self.capacity] != 0
        resolution = self.config.time_resolution_ms
        if self.config.ttl_ms:
            expired = ttl_expired(self._last_seen, live, now, self.config.ttl_ms // resolution)
            evicted[EvictionReason.TTL] += self._delete(expired, EvictionReason.TTL, live)
        if self.config.min_updates:
            stale = under_updated(
                self._created,
                self._updates,
                live,
                now,
                self.config.min_updates_grace_ms // resolution,
                self.config.min_updates,
            )
            evicted[EvictionReason.MIN_UPDATES] += self._delete(stale, EvictionReason.MIN_UPDATES, live)
        over_limit = {
            tag: self._rows_per_tag.get(tag, 0) - limit
            for tag, limit in self._limits_by_tag.items()
            if self._rows_per_tag.get(tag, 0) > limit
        }
        if over_limit:
            row_tags = key_tags(self._keys[: self.capacity])
            for tag, excess in over_limit.items():
                candidates = np.flatnonzero((row_tags == tag) & live)
                victims = lowest_score_rows(self._score, excess, candidates)
                evicted[EvictionReason.FEATURE_LIMIT] += self._delete(victims, EvictionReason.FEATURE_LIMIT, live)
        budget = self.config.budget_bytes
        if self.layout.used_bytes(len(self)) > self.config.high_watermark * budget:
            target_rows = self.layout.rows_within(self.config.low_watermark * budget)
            victims = lowest_score_rows(self._score, len(self) - target_rows)
            evicted[EvictionReason.BUDGET] += self._delete(victims, EvictionReason.BUDGET, live)
        self._passes_ended += 1
        halving = self.config.admission_filter_halving_passes
        if self._filter is not None and halving and self._passes_ended % halving == 0:
            self._filter.halve()
        # Rebuild now if the rows the next pass may still insert could push the index past max_fill.
        rebuilt = self._index.needs_rebuild(headroom=self._free_count / self._index.n_buckets)
        if rebuilt:
            self._index.rebuild()
        self._flags &= ~_TOUCHED
        return PassEndReport(
            pass_index=pass_index,
            event_time_ms=int(event_time_ms),
            rows_before=rows_before,
            rows_after=len(self),
            bytes_used=self.layout.used_bytes(len(self)),
            budget_bytes=budget,
            evictions=evicted,
            index_rebuilt=rebuilt,
            duration_s=time.perf_counter() - started,
        )

    def _delete(self, slots: np.ndarray, reason: EvictionReason | None, live: np.ndarray | None) -> int:
        """Delete live rows ``slots`` (unique, ascending): unindex, log the keys, free the rows."""
        n = slots.shape[0]
        if n == 0:
            return 0
        self._index.remove(slots)
        keys = self._keys[slots]
        if self._export_dir is not None:
            if self._log_count + n <= self._deletion_log.shape[0]:
                self._deletion_log[self._log_count : self._log_count + n] = keys
                self._log_count += n
            else:
                self._log_overflow = True  # too many deletions to list: the next export is a snapshot
        self._count_rows_by_tag(keys, -1)
        self._keys[slots] = 0
        self._score[slots] = np.inf
        self._flags[slots] = 0
        self._free[self._free_count : self._free_count + n] = slots[::-1]  # lowest slot pops first
        self._free_count += n
        if live is not None:
            live[slots] = False
        if reason is not None:
            self._evictions[reason.value] += n
        return n

    # ----------------------------------------------------------------- stats
    def stats(self) -> TableStats:
        """Bytes by component, rows (total and per feature) and cumulative policy counters."""
        rows = len(self)
        layout = self.layout
        components = {
            "weights": 4 * self.dim * (rows + 1),
            "optimizer": 4 * layout.accumulator_width * rows,
            "metadata": (layout.row_bytes - 4 * self.dim - 4 * layout.accumulator_width) * rows,
            "index": layout.index_bytes,
            "admission_filter": layout.filter_bytes,
            "deletion_log": layout.deletion_log_bytes,
        }
        return TableStats(
            budget_bytes=self.config.budget_bytes,
            bytes_used=layout.used_bytes(rows),
            bytes_allocated=layout.allocated_bytes,
            bytes_by_component=components,
            capacity_rows=layout.capacity,
            rows=rows,
            rows_per_feature={self._feature_name(tag): n for tag, n in sorted(self._rows_per_tag.items())},
            evictions=dict(self._evictions),
            admissions=self._admissions,
            rejections=dict(self._rejections),
            lookups=self._lookups,
            updated_rows=self._updated_rows,
            index_tombstones=self._index.tombstones,
        )

    def live_rows(self) -> dict[str, np.ndarray]:
        """Every live row sorted by key: keys, weights, accumulator, updates, created, score, last_seen."""
        slots = np.flatnonzero(self._keys[: self.capacity] != 0)
        slots = slots[np.argsort(self._keys[slots], kind="stable")]
        rows = self._row_fields(slots)
        rows["score"] = self._score[slots]
        rows["last_seen"] = self._last_seen[slots]
        return rows

    def _row_fields(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "keys": self._keys[slots],
            "weights": self._weights[slots],
            "accumulator": self._accumulator[slots],
            "updates": self._updates[slots],
            "created": self._created[slots],
        }

    # ----------------------------------------------------------------- export
    def export(self, model_dir: str | Path, pass_index: int) -> ExportRecord:
        """Write a delta (rows changed + keys deleted since the last export) or, every
        ``snapshot_every_passes`` passes (and on the first export to a directory), a snapshot."""
        model_dir = Path(model_dir)
        directory = str(model_dir.resolve())
        same_dir = self._export_dir == directory
        if same_dir and self._last_export_pass is not None and pass_index <= self._last_export_pass:
            raise ValueError(f"pass_index must exceed the last export's {self._last_export_pass}, got {pass_index}")
        snapshot = (
            not same_dir
            or self._log_overflow
            or self._last_snapshot_pass is None
            or pass_index - self._last_snapshot_pass >= self.config.snapshot_every_passes
        )
        if snapshot:
            slots = np.flatnonzero(self._keys[: self.capacity] != 0)
            deleted = np.empty(0, dtype=np.uint64)
        else:
            slots = np.flatnonzero(self._flags & _DIRTY)
            deleted = self._deletion_log[: self._log_count].copy()
        meta = {"config": dataclasses.asdict(self.config), "seed": self.seed}
        record = write_export(
            model_dir,
            "snapshot" if snapshot else "delta",
            pass_index,
            None if snapshot else self._last_export_pass,
            self._row_fields(slots),
            deleted,
            meta,
        )
        self._flags &= ~_DIRTY
        self._log_count = 0
        self._log_overflow = False
        self._export_dir = directory
        self._last_export_pass = pass_index
        if snapshot:
            self._last_snapshot_pass = pass_index
            prune_exports(model_dir, self.config.keep_snapshots)
        return record

    @classmethod
    def load_export(cls, model_dir: str | Path, up_to_pass: int | None = None) -> EmbeddingTable:
        """A table holding exactly the exported rows: newest snapshot, then its deltas in order
        (only exports of passes <= ``up_to_pass`` when given, e.g. the pass a model pointer names)."""
        chain = read_export_chain(Path(model_dir), up_to_pass)
        header = chain[0].meta
        table = cls(_config_from_dict(header["config"]), seed=int(header["seed"]))
        for export_file in chain:
            arrays = export_file.arrays
            deleted = table._index.find(arrays[DELETED_FIELD])
            table._delete(np.unique(deleted[deleted >= 0]), None, None)
            table._restore_rows({name: arrays[name] for name in ROW_FIELDS})
        table._flags.fill(0)
        return table

    def _restore_rows(self, rows: dict[str, np.ndarray]) -> None:
        keys = rows["keys"]
        slots = self._index.find(keys)
        absent = slots < 0
        if absent.any():
            slots[absent] = self._allocate(keys[absent], 0)
        self._weights[slots] = rows["weights"]
        self._accumulator[slots] = rows["accumulator"]
        self._updates[slots] = rows["updates"]
        self._created[slots] = rows["created"]
        self._last_seen[slots] = rows["created"]

    # ----------------------------------------------------------------- checkpoints
    def save_state(self, path: str | Path) -> None:
        """Write the full exact state (rows, index, filter, logs, counters, RNG) atomically to ``path``."""
        arrays = {name.lstrip("_"): getattr(self, name) for name in _STATE_ARRAYS}
        arrays["index_buckets"] = self._index.buckets
        arrays["index_slot_bucket"] = self._index.slot_bucket
        if self._filter is not None:
            arrays["filter_counters"] = self._filter.counters
        meta = {
            "config": dataclasses.asdict(self.config),
            "seed": self.seed,
            "free_count": self._free_count,
            "log_count": self._log_count,
            "log_overflow": self._log_overflow,
            "index_live": self._index.live,
            "index_tombstones": self._index.tombstones,
            "rng_state": self._rng.bit_generator.state,
            "tag_names": {str(tag): name for tag, name in self._tag_names.items()},
            "rows_per_tag": {str(tag): n for tag, n in self._rows_per_tag.items()},
            "evictions": self._evictions,
            "rejections": self._rejections,
            "admissions": self._admissions,
            "lookups": self._lookups,
            "updated_rows": self._updated_rows,
            "passes_ended": self._passes_ended,
            "export_dir": self._export_dir,
            "last_export_pass": self._last_export_pass,
            "last_snapshot_pass": self._last_snapshot_pass,
        }
        write_npz_atomic(Path(path), arrays, meta)

    @classmethod
    def load_state(cls, path: str | Path) -> EmbeddingTable:
        """The table saved by ``save_state``; it continues bit for bit."""
        arrays, meta = read_npz_checked(Path(path))
        table = cls(_config_from_dict(meta["config"]), seed=int(meta["seed"]))
        for name in _STATE_ARRAYS:
            target = getattr(table, name)
            source = arrays[name.lstrip("_")]
            if source.shape != target.shape or source.dtype != target.dtype:
                raise ValueError(f"{path}: array {name.lstrip('_')} has shape {source.shape}, expected {target.shape}")
            target[...] = source
        table._index.buckets[...] = arrays["index_buckets"]
        table._index.slot_bucket[...] = arrays["index_slot_bucket"]
        if table._filter is not None:
            table._filter.counters[...] = arrays["filter_counters"]
        table._free_count = int(meta["free_count"])
        table._log_count = int(meta["log_count"])
        table._log_overflow = bool(meta["log_overflow"])
        table._index.live = int(meta["index_live"])
        table._index.tombstones = int(meta["index_tombstones"])
        table._rng.bit_generator.state = meta["rng_state"]
        table._tag_names = {int(tag): name for tag, name in meta["tag_names"].items()}
        table._rows_per_tag = {int(tag): int(n) for tag, n in meta["rows_per_tag"].items()}
        table._evictions = {k: int(v) for k, v in meta["evictions"].items()}
        table._rejections = {k: int(v) for k, v in meta["rejections"].items()}
        table._admissions = int(meta["admissions"])
        table._lookups = int(meta["lookups"])
        table._updated_rows = int(meta["updated_rows"])
        table._passes_ended = int(meta["passes_ended"])
        table._export_dir = meta["export_dir"]
        table._last_export_pass = meta["last_export_pass"]
        table._last_snapshot_pass = meta["last_snapshot_pass"]
        return table


def _config_from_dict(values: dict[str, Any]) -> TableConfig:
    known = {field.name for field in dataclasses.fields(TableConfig)}
    return TableConfig(**{name: value for name, value in values.items() if name in known})


def _to_numpy(values: Any) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (without importing torch)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_key_array(keys: Any) -> np.ndarray:
    array = _to_numpy(keys)
    if array.dtype == np.int64:
        array = array.view(np.uint64)
    if array.dtype != np.uint64:
        raise ValueError(f"keys must be a uint64 (or int64) array, got dtype {array.dtype}")
    return np.ascontiguousarray(array).reshape(-1)


def _as_slot_array(slots: Any, capacity: int) -> np.ndarray:
    array = _to_numpy(slots)
    if array.dtype.kind not in "iu":
        raise ValueError(f"slots must be an integer array, got dtype {array.dtype}")
    flat = array.astype(np.int64, copy=False).reshape(-1)
    if flat.shape[0] and (flat.min() < -1 or flat.max() >= capacity):
        raise ValueError(f"slots must be -1 or in [0, {capacity}), got values in [{flat.min()}, {flat.max()}]")
    return flat
