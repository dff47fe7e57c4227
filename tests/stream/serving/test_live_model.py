"""LiveModel follows LATEST: deltas applied in place equal a fresh load, failures keep the last pass."""

from __future__ import annotations

import numpy as np
import pytest

from stream.scoring.exported_model import ExportedModel
from stream.serving.live_model import LiveModel, PassUpdate, Rebuild, UpdateFailed
from tests.stream.scoring.model_dirs import PassWriter


def probabilities(model, samples) -> np.ndarray:
    return np.array([list(s.probabilities.values()) for s in model.score([x.impression for x in samples])])


def follow(live: LiveModel):
    update = live.poll()
    if update is not None:
        live.apply(update)
    return update


def test_deltas_applied_in_place_score_like_a_fresh_load_of_the_same_pass(tmp_path):
    writer = PassWriter(tmp_path, snapshot_every_passes=10, budget_bytes=200_000, deletion_log_fraction=1.0)
    writer.write_pass()
    live = LiveModel.load(tmp_path)
    assert live.pass_index == 0 and follow(live) is None
    held_out = writer.held_out()
    table_before = live.model.model.table
    for expected_pass in (1, 2):
        writer.write_pass()
        update = follow(live)
        assert isinstance(update, PassUpdate) and len(update.deltas) == 1
        assert live.pass_index == expected_pass and live.model.model.table is table_before  # in place
        fresh = ExportedModel.load(tmp_path)
        assert probabilities(live.model, held_out).tobytes() == probabilities(fresh, held_out).tobytes()
        assert sorted(live.model.model.table.live_rows()["keys"]) == sorted(fresh.model.table.live_rows()["keys"])
    # Two passes at once: both deltas, in order.
    writer.write_pass()
    writer.write_pass()
    update = follow(live)
    assert isinstance(update, PassUpdate) and [d.pass_index for d in update.deltas] == [3, 4]
    assert update.rows[1] > 0  # keys deleted by the trainer's evictions are deleted here too
    fresh = ExportedModel.load(tmp_path)
    assert live.pass_index == 4
    assert probabilities(live.model, held_out).tobytes() == probabilities(fresh, held_out).tobytes()


def test_a_new_snapshot_rebuilds(tmp_path):
    writer = PassWriter(tmp_path, snapshot_every_passes=2)
    writer.write_pass()
    live = LiveModel.load(tmp_path)
    writer.write_pass()  # delta
    writer.write_pass()  # snapshot
    update = follow(live)
    assert isinstance(update, Rebuild) and live.pass_index == 2
    fresh = ExportedModel.load(tmp_path)
    held_out = writer.held_out()
    assert probabilities(live.model, held_out).tobytes() == probabilities(fresh, held_out).tobytes()


def test_a_damaged_delta_keeps_the_previous_pass(tmp_path):
    writer = PassWriter(tmp_path, snapshot_every_passes=10)
    writer.write_pass()
    live = LiveModel.load(tmp_path)
    writer.write_pass()
    delta = tmp_path / "table" / "delta-000000001.npz"
    data = bytearray(delta.read_bytes())
    data[len(data) // 2] ^= 0xFF
    delta.write_bytes(bytes(data))
    with pytest.raises(UpdateFailed) as failure:
        live.poll()
    assert failure.value.reason == "damaged" and "pass 1" in str(failure.value)
    assert live.pass_index == 0


def test_a_missing_pass_directory_keeps_the_previous_pass(tmp_path):
    writer = PassWriter(tmp_path)
    writer.write_pass()
    live = LiveModel.load(tmp_path)
    (tmp_path / "LATEST").write_text("pass-000000007\n")
    with pytest.raises(UpdateFailed) as failure:
        live.poll()
    assert failure.value.reason == "missing" and live.pass_index == 0


def test_latest_outside_the_model_dir_is_not_followed(tmp_path):
    writer = PassWriter(tmp_path / "model")
    writer.write_pass()
    live = LiveModel.load(tmp_path / "model")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "model" / "LATEST").write_text("../elsewhere\n")
    with pytest.raises(UpdateFailed) as failure:
        live.poll()
    assert failure.value.reason == "outside_model_dir" and live.pass_index == 0
