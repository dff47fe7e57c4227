"""Vectorised open-addressing hash index from uint64 key to int32 row slot (linear probing).

Buckets hold a slot (>= 0), ``EMPTY`` or ``TOMBSTONE``; the key of a slot lives in the row array
``row_keys`` so the index costs 4 bytes per bucket, plus 4 bytes per row for the bucket of each
slot (``slot_bucket``), which lets ``remove`` skip probing. Every operation handles a whole batch of keys
per numpy step; the Python loop runs once per probe distance, not once per key. Deletions leave
tombstones, which ``rebuild`` clears (in place, in chunks) when live + tombstone buckets pass
``max_fill`` of the table.

For incremental checkpoints the index remembers which buckets it wrote since the last
``take_changes`` (at most ``n_buckets / 16`` positions; past that, or after a rebuild, it reports
that every bucket may have changed).
"""

from __future__ import annotations

import numpy as np

EMPTY = np.int32(-1)
TOMBSTONE = np.int32(-2)
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_REBUILD_CHUNK = 1 << 20  # rows reinserted per step, bounding the rebuild's temporary memory
_CHANGE_LOG_SHARE = 16  # the change log holds at most n_buckets / this positions (int32)


class OpenAddressingIndex:
    """Key -> slot map over preallocated buckets; keys are read from the shared ``row_keys`` array."""

    def __init__(self, n_buckets: int, row_keys: np.ndarray, capacity: int, max_fill: float) -> None:
        self.buckets = np.full(n_buckets, EMPTY, dtype=np.int32)
        self.slot_bucket = np.zeros(capacity, dtype=np.int32)
        self.row_keys = row_keys
        self.live = 0
        self.tombstones = 0
        self.max_fill = max_fill
        self._changes: list[np.ndarray] = []
        self._changes_count = 0
        self._changed_all = True  # until the first take_changes: nothing to compare against

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Arrays and counters that restore this index exactly (``restore``)."""
        return {"buckets": self.buckets, "slot_bucket": self.slot_bucket}, {
            "live": self.live,
            "tombstones": self.tombstones,
        }

    def restore(self, arrays: dict[str, np.ndarray], counters: dict[str, int]) -> None:
        """Copy back what ``state`` returned (arrays of the same shapes)."""
        self.buckets[...] = arrays["buckets"]
        self.slot_bucket[...] = arrays["slot_bucket"]
        self.live, self.tombstones = int(counters["live"]), int(counters["tombstones"])
        self.take_changes()

    def take_changes(self) -> np.ndarray | None:
        """Bucket positions written since the last call (unique, ascending), or None when every
        bucket may have changed (a rebuild, an overflowing log, the first call); then forgets them."""
        changes = None if self._changed_all else np.unique(np.concatenate([np.empty(0, np.int32), *self._changes]))
        self._changes, self._changes_count, self._changed_all = [], 0, False
        return changes

    def _note_changes(self, positions: np.ndarray) -> None:
        if self._changed_all:
            return
        self._changes_count += positions.shape[0]
        if self._changes_count > self.n_buckets // _CHANGE_LOG_SHARE:
            self._changes, self._changed_all = [], True
        else:
            self._changes.append(positions.astype(np.int32))

    @property
    def n_buckets(self) -> int:
        return int(self.buckets.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.buckets.nbytes + self.slot_bucket.nbytes)

    def _home(self, keys: np.ndarray) -> np.ndarray:
        # Fibonacci hashing then Lemire's multiply-shift range reduction (no modulo).
        high = (keys * _FIBONACCI) >> np.uint64(32)
        return ((high * np.uint64(self.n_buckets)) >> np.uint64(32)).astype(np.int64)

    def _advance(self, positions: np.ndarray) -> np.ndarray:
        positions += 1
        positions[positions == self.n_buckets] = 0
        return positions

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Slots (int64, -1 when absent) of the uint64 ``keys`` (1-D); key 0 is always absent."""
        buckets, row_keys = self.buckets, self.row_keys
        # First probe on the whole batch without index arrays: most keys end here.
        pos = self._home(keys)
        found = buckets[pos]
        # Negative bucket values index the tail of row_keys (zeros) harmlessly; ``found >= 0`` masks them.
        match = (row_keys[found] == keys) & (found >= 0)
        slots = np.where(match, found, -1).astype(np.int64)
        active = np.flatnonzero(~match & (found != EMPTY) & (keys != 0))
        pending_keys = keys[active]
        pos = self._advance(pos[active])
        while active.shape[0]:
            found = buckets[pos]
            match = (row_keys[found] == pending_keys) & (found >= 0)
            slots[active[match]] = found[match]
            keep = ~match & (found != EMPTY)
            active, pending_keys, pos = active[keep], pending_keys[keep], self._advance(pos[keep])
        return slots

    def insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Add distinct ``keys`` (absent from the index, non-zero) pointing at ``slots``."""
        if self.live + self.tombstones + keys.shape[0] > self.max_fill * self.n_buckets:
            self.rebuild()
        self._insert(keys, slots.astype(np.int32))

    def _insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        buckets = self.buckets
        pos = self._home(keys)
        pending = slots
        inserted = pending.shape[0]
        while pending.shape[0]:
            current = buckets[pos]
            free = current < 0
            free_pos, free_slots = pos[free], pending[free]
            buckets[free_pos] = free_slots  # among equal positions one write wins; the others probe on
            self._note_changes(free_pos)
            won_free = buckets[free_pos] == free_slots
            self.slot_bucket[free_slots[won_free]] = free_pos[won_free]
            self.tombstones -= int(np.count_nonzero(current[free][won_free] == TOMBSTONE))
            keep = ~free
            keep[free] = ~won_free
            pending, pos = pending[keep], self._advance(pos[keep])
        self.live += inserted

    def remove(self, slots: np.ndarray) -> None:
        """Tombstone the entries of live rows ``slots`` (the caller guarantees they are live)."""
        if slots.shape[0] == 0:
            return
        positions = self.slot_bucket[slots]
        self.buckets[positions] = TOMBSTONE
        self._note_changes(positions)
        self.live -= slots.shape[0]
        self.tombstones += slots.shape[0]

    def needs_rebuild(self, headroom: float = 0.0) -> bool:
        """True when tombstones take more than ``1 - max_fill - headroom`` of the buckets."""
        return self.live + self.tombstones > (self.max_fill - headroom) * self.n_buckets

    def rebuild(self) -> None:
        """Drop every tombstone by reinserting the live slots (in place, chunked)."""
        live_slots = self.buckets[self.buckets >= 0]
        self.buckets.fill(EMPTY)
        self._changes, self._changed_all = [], True
        self.live = 0
        self.tombstones = 0
        live_slots.sort()  # deterministic reinsertion order whatever the bucket history
        for start in range(0, live_slots.shape[0], _REBUILD_CHUNK):
            chunk = live_slots[start : start + _REBUILD_CHUNK]
            self._insert(self.row_keys[chunk], chunk)
