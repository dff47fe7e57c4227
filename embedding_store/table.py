"""The global shared embedding table: every sparse ID in preallocated arrays under a byte budget."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedding_store.adagrad import adagrad_step, sum_duplicate_gradients
from embedding_store.admission import CountingFilter, admission_probability_draw
from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason, lowest_score_rows, pass_end_victims
from embedding_store.export import ROW_FIELDS, ExportRecord, TableExport
from embedding_store.index import OpenAddressingIndex
from embedding_store.inputs import (
    MAX_TICK,
    as_key_array,
    as_slot_array,
    event_ticks,
    feedback_labels,
    gradient_rows,
)
from embedding_store.keys import feature_tag, key_tags
from embedding_store.layout import FILTER_ROWS, TableLayout
from embedding_store.row_access import put_rows
from embedding_store.row_init import initial_weights
from embedding_store.score import add_feedback, decay_scores
from embedding_store.stats import PassEndReport, TableStats
from embedding_store.table_checkpoint import TableCheckpoint, capture_checkpoint, read_checkpoint_chain
from embedding_store.table_files import (
    apply_export_chains,
    capture_export,
    export_table,
    read_table_state,
    write_exported_rows,
    write_table_state,
)
from embedding_store.table_state import CHANGED, DIRTY, TOUCHED, RowArrays, TableCounters

_MAX_UPDATES = np.iinfo(np.uint16).max


class EmbeddingTable:
    """Sparse embedding rows keyed by uint64, trained with sparse AdaGrad, bounded by a byte budget.

    Slots returned by ``lookup(train=True)`` stay valid until the next ``end_pass``: rows are
    deleted only there, or, when new keys find the table full mid-pass, among the rows *not* looked
    up since the last pass end whose score is no higher than a new row's after one show (slots of
    ``train=False`` lookups are valid until the next training lookup). Times are event time in ms,
    stored as uint32 ticks of ``config.time_resolution_ms``. The whole state is ``rows`` (arrays,
    :class:`RowArrays`) and ``counters`` (:class:`TableCounters`) plus the key index, the admission
    filter and the random generator; it implements :class:`EmbeddingTableInterface`.
    """

    def __init__(self, config: TableConfig, seed: int | None = None) -> None:
        self.config = config
        self.seed = config.seed if seed is None else seed
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        self.layout = TableLayout.from_config(config)
        self.rows = RowArrays.allocate(self.layout, config)
        self.counters = TableCounters(free_count=self.layout.capacity)
        max_fill = min(0.9, config.index_load_factor + 0.25)
        self.index = OpenAddressingIndex(self.layout.n_buckets, self.rows.keys, self.layout.capacity, max_fill)
        self.admission_filter = (
            CountingFilter(FILTER_ROWS, self.layout.filter_width, self.seed) if self.layout.filter_width else None
        )
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.register_features([*config.features, *config.feature_limits])
        self._limits_by_tag = {feature_tag(name): limit for name, limit in config.feature_limits.items()}

    # ----------------------------------------------------------------- features
    def register_features(self, names: list[str]) -> None:
        """Name the features whose keys the table will hold (for rows_per_feature and limits)."""
        tag_names = self.counters.tag_names
        for name in names:
            tag = feature_tag(name)
            known = tag_names.get(tag)
            if known is not None and known != name:
                raise ValueError(f"features {known!r} and {name!r} share key tag 0x{tag:04x}; rename one of them")
            tag_names[tag] = name

    def _feature_name(self, tag: int) -> str:
        return self.counters.tag_names.get(tag, f"tag:0x{tag:04x}")

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
        return self.layout.capacity - self.counters.free_count

    def _live(self) -> np.ndarray:
        return self.rows.keys[: self.capacity] != 0

    # ----------------------------------------------------------------- lookup
    def lookup(self, keys: np.ndarray, event_time_ms: int | np.ndarray, train: bool = True) -> np.ndarray:
        """int64 slots (shape of ``keys``) of uint64 ``keys``; -1 = unknown / not admitted / padding 0.

        With ``train=True`` a missing key counts one sighting toward admission and gets a row once
        admitted; found keys get their last-seen time raised to ``event_time_ms`` (scalar, or one
        per key). ``train=False`` changes nothing.
        """
        flat = as_key_array(keys)
        slots = self.index.find(flat)
        self.counters.lookups += flat.shape[0]
        if not train:
            return slots.reshape(np.shape(keys))
        rows = self.rows
        ticks = event_ticks(event_time_ms, flat.shape[0], self.config.time_resolution_ms)
        found = slots >= 0
        found_slots = slots[found]
        # Touch found rows before admitting new ones: a mid-pass eviction must not pick them.
        rows.flags[found_slots] = rows.flags[found_slots] | (TOUCHED | CHANGED)
        if isinstance(ticks, int):
            rows.last_seen[found_slots] = np.maximum(rows.last_seen[found_slots], np.uint32(ticks))
        else:
            np.maximum.at(rows.last_seen, found_slots, ticks[found])
        missing = np.flatnonzero(~found & (flat != 0))
        if missing.shape[0]:
            self._admit(flat, slots, missing, ticks)
        return slots.reshape(np.shape(keys))

    def _admit(self, flat: np.ndarray, slots: np.ndarray, missing: np.ndarray, ticks: int | np.ndarray) -> None:
        unique, inverse, counts = np.unique(flat[missing], return_inverse=True, return_counts=True)
        rejections = self.counters.rejections
        admitted = np.ones(unique.shape[0], dtype=bool)
        prior_sightings = np.zeros(unique.shape[0], dtype=np.int64)
        if self.admission_filter is not None:
            estimate = self.admission_filter.add(unique, counts)
            admitted = estimate >= self.config.admission_min_count
            prior_sightings = np.maximum(estimate - counts, 0)
            rejections["count"] += int(unique.shape[0] - np.count_nonzero(admitted))
        if self.config.admission_probability < 1.0:
            candidates = np.flatnonzero(admitted)
            drawn = admission_probability_draw(self.rng, counts[candidates], self.config.admission_probability)
            admitted[candidates[~drawn]] = False
            rejections["probability"] += int(np.count_nonzero(~drawn))
        chosen = np.flatnonzero(admitted)
        free_count = self.counters.free_count
        if chosen.shape[0] > free_count:
            self._evict_untouched(chosen.shape[0] - free_count)
            free_count = self.counters.free_count
        if chosen.shape[0] > free_count:
            # Every row is in use this pass: keep the keys seen most often in this batch.
            by_count = chosen[np.argsort(-counts[chosen], kind="stable")]
            rejections["full"] += int(chosen.shape[0] - free_count)
            chosen = np.sort(by_count[:free_count])
        if chosen.shape[0] == 0:
            return
        if isinstance(ticks, int):
            created: int | np.ndarray = ticks
            last_seen: int | np.ndarray = ticks
        else:
            first_tick = np.full(unique.shape[0], MAX_TICK, dtype=np.uint32)
            np.minimum.at(first_tick, inverse, ticks[missing])
            last_tick = np.zeros(unique.shape[0], dtype=np.uint32)
            np.maximum.at(last_tick, inverse, ticks[missing])
            created, last_seen = first_tick[chosen], last_tick[chosen]
        unique_slots = np.full(unique.shape[0], -1, dtype=np.int64)
        new_slots = self._allocate(unique[chosen], created)
        self.rows.last_seen[new_slots] = last_seen
        # Sightings the filter counted before the row existed are credited to its score.
        prior_score = np.float32(self.config.show_weight) * prior_sightings[chosen].astype(np.float32)
        self.rows.score[new_slots] += prior_score
        unique_slots[chosen] = new_slots
        slots[missing] = unique_slots[inverse]

    def _evict_untouched(self, shortfall: int) -> None:
        """Make room mid-pass: delete the lowest-score rows not looked up since the last pass end
        and worth no more than a new row after one show, at least ``shortfall`` of them (if there
        are that many) and down to the low watermark (reason: budget)."""
        rows = self.rows
        untouched = (rows.flags & TOUCHED) == 0
        new_row_score = np.float32(self.config.initial_score) + np.float32(self.config.show_weight)
        candidates = np.flatnonzero(untouched & self._live() & (rows.score <= new_row_score))
        to_low_watermark = len(self) - self.layout.rows_within(self.config.low_watermark * self.config.budget_bytes)
        count = min(candidates.shape[0], max(shortfall, to_low_watermark))
        self._delete(lowest_score_rows(rows.score, count, candidates), EvictionReason.BUDGET, None)

    def _allocate(self, keys: np.ndarray, created: int | np.ndarray) -> np.ndarray:
        """Fresh rows for distinct absent ``keys``: new weights, zero optimizer state, dirty, touched."""
        rows, counters = self.rows, self.counters
        n = keys.shape[0]
        top = counters.free_count
        slots = rows.free[top - n : top][::-1].astype(np.int64)
        counters.free_count -= n
        if n:
            counters.rows_high_water = max(counters.rows_high_water, int(slots.max()) + 1)
        rows.keys[slots] = keys
        put_rows(rows.weights, slots, initial_weights(keys, self.dim, self.seed, self.config.init_range))
        rows.accumulator[slots] = 0.0
        rows.score[slots] = self.config.initial_score
        rows.last_seen[slots] = created
        rows.created[slots] = created
        rows.updates[slots] = 0
        rows.flags[slots] = DIRTY | TOUCHED | CHANGED
        self.index.insert(keys, slots)
        self._count_rows_by_tag(keys, +1)
        counters.admissions += n
        return slots

    def _count_rows_by_tag(self, keys: np.ndarray, sign: int) -> None:
        rows_per_tag = self.counters.rows_per_tag
        counts = np.bincount(key_tags(keys).astype(np.int64))  # tags < 2**16: no sort needed
        tags = np.flatnonzero(counts)
        for tag, count in zip(tags.tolist(), counts[tags].tolist(), strict=True):
            remaining = rows_per_tag.get(tag, 0) + sign * count
            if remaining:
                rows_per_tag[tag] = remaining
            else:
                rows_per_tag.pop(tag, None)

    # ----------------------------------------------------------------- read / train
    def gather(self, slots: np.ndarray) -> np.ndarray:
        """float32 [*slots.shape, dim] rows of ``slots``; -1 reads the shared default vector."""
        flat = as_slot_array(slots, self.capacity)
        rows = self.rows.weights.take(np.where(flat < 0, self.capacity, flat), axis=0)
        return rows.reshape((*np.shape(slots), self.dim))

    def apply_gradients(self, slots: np.ndarray, grads: Any) -> int:
        """Sparse AdaGrad on ``slots`` with float32 ``grads`` [*slots.shape, dim] (numpy or torch).

        Gradients of repeated slots are summed first; -1 slots are ignored. Returns unique rows
        updated (each gets its update count raised and is marked dirty for the next export).
        """
        flat = as_slot_array(slots, self.capacity)
        gradients = gradient_rows(grads, flat.shape[0], self.dim)
        known = flat >= 0
        if not known.all():
            flat, gradients = flat[known], gradients[known]
        unique, summed = sum_duplicate_gradients(flat, gradients)
        rows = self.rows
        adagrad_step(
            rows.weights, rows.accumulator, unique, summed, self.config.learning_rate, self.config.initial_accumulator
        )
        rows.updates[unique] = np.minimum(rows.updates[unique], _MAX_UPDATES - 1) + 1
        rows.flags[unique] |= DIRTY | CHANGED
        self.counters.updated_rows += unique.shape[0]
        return int(unique.shape[0])

    def record_feedback(self, slots: np.ndarray, positives: Any) -> None:
        """Raise feature scores: one show per occurrence in ``slots`` plus its positive label.

        ``positives`` has the shape of ``slots``, or one entry per row of a 2-D ``slots`` [B, S].
        """
        slot_array, labels = feedback_labels(slots, positives)
        flat = as_slot_array(slot_array, self.capacity)
        add_feedback(self.rows.score, flat, labels.reshape(-1), self.config.show_weight, self.config.positive_weight)
        self.rows.flags[flat[flat >= 0]] |= CHANGED

    # ----------------------------------------------------------------- pass end
    def end_pass(self, pass_index: int, event_time_ms: int) -> PassEndReport:
        """Decay scores, then delete expired, under-updated, over-limit and over-budget rows, in
        that order (:func:`~embedding_store.eviction.pass_end_victims`)."""
        started = time.perf_counter()
        rows, config = self.rows, self.config
        rows_before = len(self)
        now = event_ticks(event_time_ms, 1, config.time_resolution_ms)
        assert isinstance(now, int)
        evicted = dict.fromkeys(self.counters.evictions, 0)
        decay_scores(rows.score, config.score_decay)
        live = self._live()
        victims = pass_end_victims(rows, live, now, config, self.layout, self.counters.rows_per_tag,
                                   self._limits_by_tag, self.__len__)  # fmt: skip
        for reason, slots in victims:  # each batch deleted before the next is chosen
            evicted[reason] += self._delete(slots, reason, live)
        self.counters.passes_ended += 1
        halving = config.admission_filter_halving_passes
        if self.admission_filter is not None and halving and self.counters.passes_ended % halving == 0:
            self.admission_filter.halve()
        # Rebuild now if the rows the next pass may still insert could push the index past max_fill.
        rebuilt = self.index.needs_rebuild(headroom=self.counters.free_count / self.index.n_buckets)
        if rebuilt:
            self.index.rebuild()
        rows.flags &= ~TOUCHED
        return PassEndReport(
            pass_index=pass_index,
            event_time_ms=int(event_time_ms),
            rows_before=rows_before,
            rows_after=len(self),
            bytes_used=self.layout.used_bytes(len(self)),
            budget_bytes=config.budget_bytes,
            evictions=evicted,
            index_rebuilt=rebuilt,
            duration_s=time.perf_counter() - started,
        )

    def _delete(self, slots: np.ndarray, reason: EvictionReason | None, live: np.ndarray | None) -> int:
        """Delete live rows ``slots`` (unique, ascending): unindex, log the keys, free the rows."""
        n = slots.shape[0]
        if n == 0:
            return 0
        rows, counters = self.rows, self.counters
        self.index.remove(slots)
        keys = rows.keys[slots]
        if counters.export_dir is not None:
            if counters.log_count + n <= rows.deletion_log.shape[0]:
                rows.deletion_log[counters.log_count : counters.log_count + n] = keys
                counters.note_written("deletion_log", counters.log_count, counters.log_count + n)
                counters.log_count += n
            else:
                counters.log_overflow = True  # too many deletions to list: the next export is a snapshot
        self._count_rows_by_tag(keys, -1)
        rows.keys[slots] = 0
        rows.score[slots] = np.inf
        rows.flags[slots] = CHANGED
        rows.free[counters.free_count : counters.free_count + n] = slots[::-1]  # lowest slot pops first
        counters.note_written("free", counters.free_count, counters.free_count + n)
        counters.free_count += n
        if live is not None:
            live[slots] = False
        if reason is not None:
            counters.evictions[reason.value] += n
        return n

    # ----------------------------------------------------------------- stats
    def stats(self) -> TableStats:
        """Bytes by component, rows (total and per feature) and cumulative policy counters."""
        rows = len(self)
        layout, counters = self.layout, self.counters
        return TableStats(
            budget_bytes=self.config.budget_bytes,
            bytes_used=layout.used_bytes(rows),
            bytes_allocated=layout.allocated_bytes,
            bytes_by_component=layout.bytes_by_component(rows),
            capacity_rows=layout.capacity,
            rows=rows,
            rows_per_feature={self._feature_name(tag): n for tag, n in sorted(counters.rows_per_tag.items())},
            evictions=dict(counters.evictions),
            admissions=counters.admissions,
            rejections=dict(counters.rejections),
            lookups=counters.lookups,
            updated_rows=counters.updated_rows,
            index_tombstones=self.index.tombstones,
        )

    def live_rows(self) -> dict[str, np.ndarray]:
        """Every live row sorted by key: the exported fields (``ROW_FIELDS``), score and last_seen."""
        slots = np.flatnonzero(self._live())
        slots = slots[np.argsort(self.rows.keys[slots], kind="stable")]
        return self.row_fields(slots, (*ROW_FIELDS, "score", "last_seen"))

    def row_fields(self, slots: np.ndarray, names: tuple[str, ...] = ROW_FIELDS) -> dict[str, np.ndarray]:
        """Copies of the named ``RowArrays`` fields at ``slots`` (default: the exported ones)."""
        arrays = self.rows.as_dict()
        return {name: arrays[name][slots] for name in names}

    # ----------------------------------------------------------------- export
    def export(self, model_dir: str | Path, pass_index: int) -> ExportRecord:
        """Write a delta (rows changed + keys deleted since the last export) or, every
        ``snapshot_every_passes`` passes (and on the first export to a directory), a snapshot."""
        return export_table(self, Path(model_dir), pass_index)

    def capture_export(self, model_dir: str | Path, pass_index: int) -> TableExport:
        """What ``export`` would write, copied out now (the table counts it as exported) and
        written later, from any thread, by ``TableExport.write``."""
        return capture_export(self, Path(model_dir), pass_index)

    @classmethod
    def load_export(
        cls,
        model_dir: str | Path | Sequence[str | Path],
        up_to_pass: int | None = None,
        config: TableConfig | None = None,
    ) -> EmbeddingTable:
        """A table holding exactly the exported rows: newest snapshot, then its deltas in order
        (only exports of passes <= ``up_to_pass`` when given, e.g. the pass a model pointer names).
        A list of directories (the shards of a sharded table's export) loads them all into one table.

        ``config`` (same ``dim``) replaces the exported table's settings, e.g. to train the rows on
        under this run's budget and learning rate; ValueError if the rows do not fit its budget.
        """
        dirs = [model_dir] if isinstance(model_dir, str | Path) else list(model_dir)
        return apply_export_chains([Path(d) for d in dirs], up_to_pass, cls, config)

    def delete_keys(self, keys: np.ndarray) -> None:
        """Remove the rows of ``keys`` (absent keys are ignored); no eviction is counted."""
        slots = self.index.find(as_key_array(keys))
        self._delete(np.unique(slots[slots >= 0]), None, None)

    def upsert_rows(self, rows: dict[str, np.ndarray]) -> None:
        """Write exported rows (``ROW_FIELDS``), creating the missing keys; last-seen = creation.
        Rows that also carry ``score`` and ``last_seen`` (a table moved to other shards) keep them."""
        slots = self.index.find(rows["keys"])
        absent = slots < 0
        if int(absent.sum()) > self.counters.free_count:
            raise ValueError(
                f"budget_bytes {self.config.budget_bytes} holds {self.capacity} rows, too few for the "
                f"{len(self) + int(absent.sum())} exported rows"
            )
        if absent.any():
            slots[absent] = self._allocate(rows["keys"][absent], 0)
        write_exported_rows(self.rows, slots, rows)

    # ----------------------------------------------------------------- checkpoints
    def save_state(self, path: str | Path) -> None:
        """Write the full exact state (rows, counters, index, filter, RNG) atomically to ``path``."""
        write_table_state(self, Path(path))

    @classmethod
    def load_state(cls, path: str | Path) -> EmbeddingTable:
        """The table saved by ``save_state``; it continues bit for bit."""
        return read_table_state(Path(path), cls)

    def capture_checkpoint(self, pass_index: int, base: bool) -> TableCheckpoint:
        """A base (when ``base`` or no earlier checkpoint) or the changes since the last checkpoint,
        copied out of the table (write it from any thread with ``TableCheckpoint.write``)."""
        return capture_checkpoint(self, pass_index, base)

    @classmethod
    def load_checkpoint_chain(cls, paths: list[Path]) -> EmbeddingTable:
        """The table at the last of ``paths``: a base file then its increments in order, verified."""
        return read_checkpoint_chain([Path(p) for p in paths], cls)
