"""The table against a plain-Python reference model over random operation sequences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedding_store import EmbeddingTable, TableConfig, feature_keys
from embedding_store.keys import feature_tag, key_tags
from embedding_store.row_init import initial_weights

DIM = 4
UNIVERSE = np.concatenate(
    [
        np.zeros(1, dtype=np.uint64),  # padding
        feature_keys("item_id", np.arange(1, 31)),
        feature_keys("tag", np.arange(1, 13)),
    ]
)
CONFIG = TableConfig(
    dim=DIM,
    budget_bytes=1200,  # 16 rows: the table fills, rejects and evicts
    high_watermark=0.6,
    low_watermark=0.4,
    score_decay=0.9,
    show_weight=0.1,
    positive_weight=1.0,
    initial_score=0.0,
    feature_limits={"tag": 3},
    ttl_ms=100,
    min_updates=1,
    min_updates_grace_ms=100,
    time_resolution_ms=1,
    init_range=0.1,
    seed=0,
)


@dataclass
class ReferenceRow:
    weights: np.ndarray
    accumulator: np.float32
    score: np.float32
    last_seen: int
    created: int
    updates: int


class ReferenceTable:
    """Dict from key to row, one Python step per key: the behaviour the table must reproduce."""

    def __init__(self, table: EmbeddingTable) -> None:
        self.capacity = table.capacity
        self.layout = table.layout
        self.rows: dict[int, ReferenceRow] = {}
        self.touched: set[int] = set()  # keys looked up for training since the last pass end
        self.slot_of: dict[int, int] = {}
        self.admissions = 0
        self.evictions = {"ttl": 0, "min_updates": 0, "selected": 0}

    def lookup(self, table: EmbeddingTable, keys: np.ndarray, t: int, train: bool, slots: np.ndarray) -> None:
        """Check the table's ``slots`` for ``keys`` and apply the lookup to the reference."""
        missing: dict[int, int] = {}
        for key, slot in zip(keys.tolist(), slots.tolist(), strict=True):
            if key == 0 or (key not in self.rows and not train):
                assert slot == -1
            elif key in self.rows:
                assert slot == self.slot_of[key]
            else:
                missing[key] = missing.get(key, 0) + 1
        if not train:
            return
        self.touched.update(k for k in keys.tolist() if k in self.rows)
        candidates = sorted(missing)
        if len(candidates) > self.capacity - len(self.rows):
            self._check_mid_pass_eviction(table, len(candidates))
        room = self.capacity - len(self.rows)
        chosen = set(sorted(candidates, key=lambda k: -missing[k])[:room])  # stable: ties by key
        used = set(self.slot_of.values())
        for key in candidates:
            table_slots = {s for k, s in zip(keys.tolist(), slots.tolist(), strict=True) if k == key}
            assert len(table_slots) == 1
            slot = table_slots.pop()
            if key not in chosen:
                assert slot == -1
                continue
            assert slot >= 0 and slot not in used
            used.add(slot)
            self.slot_of[key] = slot
            weights = initial_weights(np.array([key], dtype=np.uint64), DIM, CONFIG.seed, CONFIG.init_range)[0]
            self.rows[key] = ReferenceRow(weights.copy(), np.float32(0), np.float32(0), t, t, 0)
            self.admissions += 1
            self.touched.add(key)
        for key in keys.tolist():
            if key in self.rows:
                self.rows[key].last_seen = max(self.rows[key].last_seen, t)

    def _check_mid_pass_eviction(self, table: EmbeddingTable, wanted: int) -> None:
        """The table ran out of rows: it must have deleted the lowest-score untouched rows."""
        new_row_score = np.float32(CONFIG.initial_score) + np.float32(CONFIG.show_weight)
        untouched = [k for k in self.rows if k not in self.touched and self.rows[k].score <= new_row_score]
        to_low = len(self.rows) - self.layout.rows_within(CONFIG.low_watermark * CONFIG.budget_bytes)
        expected = min(len(untouched), max(wanted - (self.capacity - len(self.rows)), to_low))
        live = set(table.live_rows()["keys"].tolist())
        deleted = [k for k in untouched if k not in live]
        assert len(deleted) == expected
        kept_min = min((self.rows[k].score for k in untouched if k in live), default=np.inf)
        assert all(self.rows[k].score <= kept_min for k in deleted)
        for key in deleted:
            self._drop(key, "selected")

    def key_of_slot(self, slot: int) -> int:
        return next(k for k, s in self.slot_of.items() if s == slot)

    def apply_gradients(self, slots: np.ndarray, grads: np.ndarray) -> None:
        summed: dict[int, np.ndarray] = {}
        for slot, grad in zip(slots.tolist(), grads, strict=True):
            if slot >= 0:
                key = self.key_of_slot(slot)
                summed[key] = summed[key] + grad if key in summed else grad.copy()
        g0, lr = np.float32(CONFIG.initial_accumulator), np.float32(CONFIG.learning_rate)
        for key, grad in summed.items():
            row = self.rows[key]
            row.weights = row.weights - grad * (np.sqrt(g0 / (g0 + row.accumulator)) * lr)
            row.accumulator = np.float32(row.accumulator + np.mean(grad * grad))
            row.updates += 1

    def record_feedback(self, slots: np.ndarray, positives: np.ndarray) -> None:
        for slot, positive in zip(slots.tolist(), positives.tolist(), strict=True):
            if slot >= 0:
                row = self.rows[self.key_of_slot(slot)]
                increment = np.float32(CONFIG.show_weight) + np.float32(CONFIG.positive_weight) * np.float32(positive)
                row.score = np.float32(row.score + increment)

    def end_pass(self, table: EmbeddingTable, t: int) -> None:
        """Apply the exact policies, then check the table's score-based choices and adopt them."""
        for row in self.rows.values():
            row.score = np.float32(row.score * np.float32(CONFIG.score_decay))
        for key in [k for k, r in self.rows.items() if t - CONFIG.ttl_ms > 0 and r.last_seen < t - CONFIG.ttl_ms]:
            self._drop(key, "ttl")
        for key in [
            k
            for k, r in self.rows.items()
            if r.updates < CONFIG.min_updates and r.created <= t - CONFIG.min_updates_grace_ms
        ]:
            self._drop(key, "min_updates")
        live = set(table.live_rows()["keys"].tolist())
        assert live <= set(self.rows)
        deleted = set(self.rows) - live
        tag = feature_tag("tag")
        tag_rows = [k for k in self.rows if int(key_tags(np.array([k], dtype=np.uint64))[0]) == tag]
        excess = max(0, len(tag_rows) - CONFIG.feature_limits["tag"])
        after_limit = len(self.rows) - excess
        budget = CONFIG.budget_bytes
        over = table.layout.used_bytes(after_limit) > CONFIG.high_watermark * budget
        budget_victims = after_limit - table.layout.rows_within(CONFIG.low_watermark * budget) if over else 0
        assert len(deleted) == excess + budget_victims
        # Rows explained by the feature limit are the tag's lowest scores; every other victim
        # scores no higher than any row kept.
        tag_scores = sorted(self.rows[k].score for k in tag_rows)
        limit_cut = tag_scores[excess - 1] if excess else -np.inf
        by_limit = {k for k in deleted if k in tag_rows and self.rows[k].score <= limit_cut}
        assert len([k for k in tag_rows if k not in deleted]) <= CONFIG.feature_limits["tag"]
        kept_min = min((self.rows[k].score for k in live), default=np.inf)
        assert all(self.rows[k].score <= kept_min for k in deleted - by_limit)
        for key in deleted:
            self._drop(key, "selected")
        self.touched.clear()

    def _drop(self, key: int, reason: str) -> None:
        del self.rows[key]
        del self.slot_of[key]
        self.touched.discard(key)
        self.evictions[reason] += 1

    def assert_matches(self, table: EmbeddingTable) -> None:
        live = table.live_rows()
        keys = sorted(self.rows)
        assert live["keys"].tolist() == keys
        for i, key in enumerate(keys):
            row = self.rows[key]
            assert np.allclose(live["weights"][i], row.weights, rtol=1e-5, atol=1e-7)
            assert np.isclose(live["accumulator"][i], row.accumulator, rtol=1e-5, atol=1e-7)
            assert np.isclose(live["score"][i], row.score, rtol=1e-5, atol=1e-7)
            assert (live["last_seen"][i], live["created"][i], live["updates"][i]) == (
                row.last_seen,
                row.created,
                row.updates,
            )
        stats = table.stats()
        assert stats.rows == len(self.rows) and stats.admissions == self.admissions
        assert stats.evictions["ttl"] == self.evictions["ttl"]
        assert stats.evictions["min_updates"] == self.evictions["min_updates"]
        assert stats.evictions["budget"] + stats.evictions["feature_limit"] == self.evictions["selected"]
        assert stats.bytes_used <= CONFIG.budget_bytes


lookups = st.tuples(
    st.just("lookup"),
    st.lists(st.integers(0, UNIVERSE.size - 1), min_size=1, max_size=30),
    st.integers(0, 15),  # event time advance (ms)
    st.booleans(),
)
bursts = st.builds(  # many distinct keys at once: fills the table, forcing mid-pass evictions
    lambda start, advance: ("lookup", list(range(start, start + 20)), advance, True),
    st.integers(1, UNIVERSE.size - 20),
    st.integers(0, 15),
)
gradients = st.tuples(
    st.just("grad"),
    st.lists(st.integers(0, 19), min_size=1, max_size=20),
    st.integers(0, 2**32 - 1),  # seed of the gradient values
)
feedback = st.tuples(st.just("feedback"), st.lists(st.integers(0, 19), min_size=1, max_size=20), st.integers(0, 3))
pass_ends = st.tuples(st.just("end_pass"), st.integers(0, 40))
operations = st.lists(st.one_of(lookups, lookups, bursts, gradients, feedback, pass_ends), min_size=1, max_size=50)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_table_matches_the_reference_model(ops):
    table = EmbeddingTable(CONFIG)
    reference = ReferenceTable(table)
    t = 0
    last_slots = np.full(1, -1, dtype=np.int64)
    for op in ops:
        if op[0] == "lookup":
            _, picks, advance, train = op
            t += advance
            keys = UNIVERSE[picks]
            slots = table.lookup(keys, t, train=train)
            reference.lookup(table, keys, t, train, slots)
            last_slots = slots
        elif op[0] == "grad":
            slots = last_slots[np.array(op[1]) % last_slots.size]
            grads = np.random.default_rng(op[2]).standard_normal((slots.size, DIM)).astype(np.float32)
            table.apply_gradients(slots, grads)
            reference.apply_gradients(slots, grads)
        elif op[0] == "feedback":
            slots = last_slots[np.array(op[1]) % last_slots.size]
            positives = (np.arange(slots.size) % 4 < op[2]).astype(np.int64)
            table.record_feedback(slots, positives)
            reference.record_feedback(slots, positives)
        else:
            t += op[1]
            table.end_pass(0, t)
            reference.end_pass(table, t)
            last_slots = np.full(1, -1, dtype=np.int64)  # slots are valid only until the pass end
        reference.assert_matches(table)
