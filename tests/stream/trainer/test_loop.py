import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monitoring.run_log import read_pass_records
from stream.events.formats import encode
from stream.kafka.clients import new_producer
from stream.scoring.model_files import latest_pass
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths, read_manifests

from .kafka_samples import fill_samples_topic, simulated_samples, small_config

pytestmark = pytest.mark.kafka


def trainer_for(config, run_dir):
    return IncrementalTrainer(config, TrainerPaths.from_config(config, str(run_dir)))


def final_state(run_dir: Path):
    """Dense state, every table array and counter, and state.json of the run's newest checkpoint."""
    from embedding_store.table import EmbeddingTable
    from embedding_store.table_files import table_state

    _, chain = CheckpointStore(run_dir / "checkpoints", keep_chains=2).latest_restorable()
    dense = torch.load(chain[-1] / "dense.pt", weights_only=True)
    table = EmbeddingTable.load_checkpoint_chain([link / "table.npz" for link in chain])
    arrays, meta = table_state(table)
    meta.pop("export_dir")  # the run's own model directory
    arrays = {name: values.copy() for name, values in arrays.items()}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return dense, arrays, json.loads((chain[-1] / "state.json").read_text())


def assert_same_model(a: Path, b: Path):
    from stream.trainer.training_model import dense_tensors_equal

    dense_a, table_a, state_a = final_state(a)
    dense_b, table_b, state_b = final_state(b)
    assert dense_tensors_equal(dense_a, dense_b)
    assert table_a.keys() == table_b.keys()
    for name in table_a:
        assert table_a[name].tobytes() == table_b[name].tobytes(), name
    assert state_a["next_offsets"] == state_b["next_offsets"]


def test_trains_every_sample_once_and_publishes(pipeline_config, tmp_path):
    config = small_config(pipeline_config)
    samples = simulated_samples(config, 1000)
    # 50 samples written twice, as a joiner restarted after a crash rewrites its last output.
    fill_samples_topic(config, samples[:150] + samples[100:150] + samples[150:])
    producer = new_producer(config.kafka, name="test producer")
    producer.produce(config.kafka.topics.samples.name, b'{"not": "a sample"', b"7")  # skipped, counted
    producer.flush(30)
    summary = trainer_for(config, tmp_path / "run").run(RunOptions(stop_at_end=True))
    assert summary.invalid_messages == 1
    manifests = read_manifests(tmp_path / "run")
    assert [m.pass_index for m in manifests] == list(range(len(manifests))) and len(manifests) >= 5
    assert sum(m.messages for m in manifests) == 1050
    assert sum(m.samples for m in manifests) == 1000 == sum(r.samples for r in summary.passes)
    assert sum(m.duplicates for m in manifests) == 50
    records = read_pass_records(tmp_path / "run")
    assert [r.pass_index for r in records] == [m.pass_index for m in manifests]
    assert all(0.0 <= v <= 1.0 for r in records[1:] for v in r.auc.values() if v == v)
    assert records[-1].table_rows > 0
    latest = latest_pass(tmp_path / "run" / "model").path
    assert latest.name == f"pass-{manifests[-1].pass_index:09d}"
    assert json.loads((latest / "manifest.json").read_text()) == manifests[-1].to_dict()
    # Per-partition ranges are contiguous from 0 to the end of the topic.
    ends = {}
    for m in manifests:
        for r in m.ranges:
            assert r.start_offset == ends.get(r.partition, 0)
            ends[r.partition] = r.end_offset
    assert sum(ends.values()) >= 1050  # the undecodable message may close its partition's last range


def test_restart_continues_bit_for_bit(pipeline_config, tmp_path):
    config = small_config(pipeline_config)
    fill_samples_topic(config, simulated_samples(config, 1400))
    trainer_for(config, tmp_path / "straight").run(RunOptions(max_passes=6))
    first = trainer_for(config, tmp_path / "restarted").run(RunOptions(max_passes=2))
    assert first.next_pass == 2
    second = trainer_for(config, tmp_path / "restarted").run(RunOptions(max_passes=6))
    assert second.resumed_from_pass == 1 and second.next_pass == 6
    straight, restarted = read_manifests(tmp_path / "straight"), read_manifests(tmp_path / "restarted")
    assert [m.to_dict() for m in restarted] == [m.to_dict() for m in straight]
    assert_same_model(tmp_path / "straight", tmp_path / "restarted")


@pytest.mark.parametrize(
    ("damaged", "file", "resumed"),
    [(2, "dense.pt", 1), (1, "table.npz", 0)],  # the newest increment torn; an increment inside the chain
)
def test_corrupt_checkpoint_falls_back_and_retrains_the_pass(pipeline_config, tmp_path, caplog, damaged, file, resumed):
    config = small_config(pipeline_config)
    fill_samples_topic(config, simulated_samples(config, 900))
    trainer_for(config, tmp_path / "straight").run(RunOptions(max_passes=4))
    trainer_for(config, tmp_path / "damaged").run(RunOptions(max_passes=3))
    path = tmp_path / "damaged" / "checkpoints" / f"ckpt-{damaged:09d}" / file
    path.write_bytes(path.read_bytes()[:-20])  # a torn write
    summary = trainer_for(config, tmp_path / "damaged").run(RunOptions(max_passes=4))
    assert summary.resumed_from_pass == resumed
    assert any(f"ckpt-{damaged:09d}" in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    assert [m.to_dict() for m in read_manifests(tmp_path / "damaged")] == [
        m.to_dict() for m in read_manifests(tmp_path / "straight")
    ]
    assert_same_model(tmp_path / "straight", tmp_path / "damaged")


def test_metrics_follow_the_passes(pipeline_config, tmp_path):
    config = small_config(pipeline_config)
    config.monitoring.enabled = True
    config.monitoring.trainer_port = 0  # any free port
    fill_samples_topic(config, simulated_samples(config, 450))
    trainer = trainer_for(config, tmp_path / "run")
    summary = trainer.run(RunOptions(stop_at_end=True))
    assert trainer.metrics.trained_samples._value.get() == sum(r.samples for r in summary.passes) == 450
    assert trainer.metrics.pass_index._value.get() == summary.next_pass - 1
    assert trainer.table_metrics.used_bytes._value.get() == summary.passes[-1].table_bytes


def test_a_message_of_two_samples_is_invalid_and_every_pass_keeps_its_offsets(pipeline_config, tmp_path):
    """Issue 12 case 3 against the broker: ``<sample>,<sample>`` in one message added a row, the
    rows shifted against their offsets and a real sample was dropped, with 0 invalid messages."""
    config = small_config(pipeline_config, pass_samples=100)
    samples = simulated_samples(config, 450)
    smuggled, real = samples[:2], samples[2:]
    topic = config.kafka.topics.samples.name
    producer = new_producer(config.kafka, name="test producer")
    for i, sample in enumerate(real):
        if i == 150:
            producer.produce(topic, encode(smuggled[0]) + b"," + encode(smuggled[1]), sample.key(), partition=0)
        producer.produce(topic, encode(sample), sample.key(), partition=i % 2)
    producer.flush(30)
    summary = trainer_for(config, tmp_path / "run").run(RunOptions(stop_at_end=True))
    assert summary.invalid_messages == 1
    manifests = read_manifests(tmp_path / "run")
    assert sum(m.messages for m in manifests) == sum(m.samples for m in manifests) == len(real)
    assert sum(r.end_offset - r.start_offset for m in manifests for r in m.ranges) == len(real) + 1
