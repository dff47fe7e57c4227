import numpy as np

from embedding_store import EmbeddingTable
from embedding_store.adagrad import adagrad_step, sum_duplicate_gradients
from tests.embedding_store.table_fixtures import small_config


def test_sum_duplicate_gradients():
    slots = np.array([5, 2, 5, 7, 2, 5])
    grads = np.arange(12, dtype=np.float32).reshape(6, 2)
    unique, summed = sum_duplicate_gradients(slots, grads)
    assert unique.tolist() == [2, 5, 7]
    assert summed.tolist() == [[10, 12], [14, 17], [6, 7]]


def test_row_wise_step_matches_paddle_formula():
    weights = np.ones((3, 2), np.float32)
    accumulator = np.array([0.0, 1.0, 0.0], np.float32)
    grads = np.array([[1.0, 3.0]], np.float32)
    adagrad_step(weights, accumulator, np.array([1]), grads, learning_rate=0.05, initial_accumulator=3.0)
    expected = 1.0 - 0.05 * np.array([1.0, 3.0]) * np.sqrt(3.0 / 4.0)
    assert np.allclose(weights[1], expected, rtol=1e-6)
    assert accumulator[1] == np.float32(1.0 + 5.0)  # + mean(g^2)
    assert (weights[[0, 2]] == 1).all() and accumulator[0] == 0


def test_element_wise_step():
    weights = np.zeros((1, 2), np.float32)
    accumulator = np.array([[0.0, 6.0]], np.float32)
    adagrad_step(weights, accumulator, np.array([0]), np.array([[1.0, 1.0]], np.float32), 0.1, 3.0)
    assert np.allclose(weights[0], [-0.1, -0.1 * np.sqrt(3.0 / 9.0)], rtol=1e-6)
    assert accumulator.tolist() == [[1.0, 7.0]]


def test_repeated_updates_shrink_the_step(item_keys):
    table = EmbeddingTable(small_config(init_range=0.0))
    slot = table.lookup(item_keys[:1], 1)
    steps = []
    for _ in range(3):
        before = table.gather(slot).copy()
        table.apply_gradients(slot, np.ones((1, 4), np.float32))
        steps.append(float((before - table.gather(slot))[0, 0]))
    assert steps[0] == np.float32(0.05) and steps[0] > steps[1] > steps[2] > 0


def test_element_wise_table(item_keys):
    table = EmbeddingTable(small_config(row_wise_adagrad=False))
    slots = table.lookup(item_keys[:2], 1)
    table.apply_gradients(slots, np.array([[1, 0, 0, 0], [0, 2, 0, 0]], np.float32))
    assert table.live_rows()["accumulator"].shape == (2, 4)
