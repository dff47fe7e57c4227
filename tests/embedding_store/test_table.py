import numpy as np
import pytest
import torch

from embedding_store import EmbeddingTable, feature_keys
from embedding_store.row_init import initial_weights
from tests.embedding_store.table_fixtures import small_config


def test_lookup_keeps_shape_and_slots_are_stable(item_keys):
    table = EmbeddingTable(small_config())
    keys = item_keys[:12].reshape(3, 4)
    slots = table.lookup(keys, 10)
    assert slots.shape == (3, 4) and slots.dtype == np.int64
    assert len(np.unique(slots)) == 12 and (slots >= 0).all()
    assert (table.lookup(keys, 20) == slots).all()
    assert len(table) == 12


def test_padding_key_reads_the_default_vector():
    table = EmbeddingTable(small_config(default_value=0.5))
    slots = table.lookup(np.zeros(3, dtype=np.uint64), 10)
    assert (slots == -1).all() and len(table) == 0
    assert (table.gather(slots) == np.float32(0.5)).all()


def test_eval_lookup_creates_nothing_and_counts_no_admission(item_keys):
    table = EmbeddingTable(small_config(admission_min_count=2))
    for _ in range(3):
        assert (table.lookup(item_keys[:5], 10, train=False) == -1).all()
    assert len(table) == 0 and table.stats().admissions == 0
    assert (table.lookup(item_keys[:5], 10) == -1).all()  # first training sighting
    assert (table.lookup(item_keys[:5], 10) >= 0).all()  # second one admits


def test_new_rows_depend_on_key_and_seed_not_on_order(item_keys):
    first = EmbeddingTable(small_config(), seed=3)
    second = EmbeddingTable(small_config(), seed=3)
    other_seed = EmbeddingTable(small_config(), seed=4)
    keys = item_keys[:50]
    a = first.gather(first.lookup(keys, 1))
    b = second.gather(second.lookup(keys[::-1], 1))[::-1]
    c = other_seed.gather(other_seed.lookup(keys, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.1 and np.abs(a).max() > 0.05
    assert np.array_equal(a, initial_weights(keys, 4, 3, 0.1))


def test_gather_shape_and_default_rows(item_keys):
    table = EmbeddingTable(small_config())
    slots = table.lookup(item_keys[:6], 1).reshape(2, 3)
    slots[0, 1] = -1
    rows = table.gather(slots)
    assert rows.shape == (2, 3, 4) and rows.dtype == np.float32
    assert (rows[0, 1] == 0).all() and (rows[1] != 0).any()


def test_apply_gradients_sums_duplicates_and_ignores_unknown(item_keys):
    config = small_config(learning_rate=0.05, initial_accumulator=3.0)
    table = EmbeddingTable(config)
    twin = EmbeddingTable(config)
    slots = table.lookup(item_keys[:2], 1)
    twin.lookup(item_keys[:2], 1)
    g = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    updated = table.apply_gradients(np.array([slots[0], slots[0], -1, slots[1]]), np.stack([g[0], g[0], g[1], g[1]]))
    assert updated == 2
    twin.apply_gradients(slots, np.stack([2 * g[0], g[1]]))
    assert np.array_equal(table.gather(slots), twin.gather(slots))
    rows = table.live_rows()
    assert (rows["updates"] == 1).all()
    assert (table.gather(np.array([-1])) == 0).all()  # the default vector is never trained


def test_apply_gradients_accepts_torch_tensors(item_keys):
    table = EmbeddingTable(small_config())
    slots = table.lookup(item_keys[:3], 1)
    before = table.gather(slots)
    table.apply_gradients(torch.from_numpy(slots), torch.ones(3, 4, requires_grad=True))
    assert (table.gather(slots) < before).all()


def test_reused_slot_gets_fresh_weights_and_optimizer_state(item_keys):
    table = EmbeddingTable(small_config(ttl_ms=100))
    old = table.lookup(item_keys[:1], 1)
    table.apply_gradients(old, np.full((1, 4), 5.0, dtype=np.float32))
    table.record_feedback(old, np.array([1]))
    table.end_pass(0, 1000)  # expired by TTL
    assert len(table) == 0
    new = table.lookup(item_keys[1:2], 1000)
    assert new[0] == old[0]  # the freed slot is reused
    rows = table.live_rows()
    assert rows["keys"][0] == item_keys[1]
    assert np.array_equal(rows["weights"][0], initial_weights(item_keys[1:2], 4, 0, 0.1)[0])
    assert rows["accumulator"][0] == 0 and rows["updates"][0] == 0 and rows["score"][0] == 0


def test_record_feedback_per_sample_labels(item_keys):
    table = EmbeddingTable(small_config(show_weight=0.1, positive_weight=1.0))
    slots = table.lookup(item_keys[:4], 1).reshape(2, 2)
    table.record_feedback(slots, np.array([1, 0]))
    scores = dict(zip(table.live_rows()["keys"].tolist(), table.live_rows()["score"].tolist(), strict=True))
    assert scores[int(item_keys[0])] == pytest.approx(1.1) and scores[int(item_keys[3])] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="positives must have the shape of slots"):
        table.record_feedback(slots, np.array([1, 0, 1]))


def test_stats_report_rows_per_feature_and_bytes():
    table = EmbeddingTable(small_config(features=["item_id"]))
    table.lookup(feature_keys("item_id", np.arange(1, 8)), 1)
    table.lookup(feature_keys("user_id", np.arange(1, 4)), 1)
    stats = table.stats()
    assert stats.rows == 10
    assert stats.rows_per_feature["item_id"] == 7
    assert sorted(stats.rows_per_feature.values()) == [3, 7]
    assert sum(stats.bytes_by_component.values()) == stats.bytes_used <= stats.bytes_allocated <= stats.budget_bytes
    table.register_features(["user_id"])
    assert table.stats().rows_per_feature == {"item_id": 7, "user_id": 3}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.lookup(np.array([1.0]), 1), "keys must be a uint64"),
        (lambda t: t.lookup(np.array([1], dtype=np.uint64), -5), "event_time_ms must be in"),
        (lambda t: t.lookup(np.array([1, 2], dtype=np.uint64), np.array([1])), "event_time_ms must be an int"),
        (lambda t: t.gather(np.array([10**9])), "slots must be -1 or in"),
        (lambda t: t.apply_gradients(np.array([0]), np.zeros((1, 3), np.float32)), "grads must have one row"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(EmbeddingTable(small_config()))


def test_per_key_event_times(item_keys):
    table = EmbeddingTable(small_config())
    keys = np.concatenate([item_keys[:2], item_keys[:1]])
    table.lookup(keys, np.array([50, 30, 20]))
    rows = table.live_rows()
    fields = zip(rows["keys"], rows["created"], rows["last_seen"], strict=True)
    by_key = {int(k): (int(c), int(s)) for k, c, s in fields}
    assert by_key[int(item_keys[0])] == (20, 50)
    assert by_key[int(item_keys[1])] == (30, 30)
