"""Warm start: a fresh model refuses the warm-start-only preset, an export comes back exactly and trains on,
and ``pepnet train --init-from`` continues a model after its data on a real topic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from monitoring.run_log import read_pass_records
from stream.cli.main import main
from stream.config.errors import UserError
from stream.config.pipeline import load_config
from stream.events.batching import SampleBatcher
from stream.simulator.generator import EventSimulator
from stream.trainer.exporter import ModelExporter
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths, read_manifests
from stream.trainer.manifest import PartitionRange, PassManifest
from stream.trainer.training_model import TrainingModel, dense_tensors_equal
from stream.trainer.warm_start import load_warm_model
from tests.stream.trainer.kafka_samples import (
    SMALL_TRAINER,
    fill_samples_topic,
    kafka_overrides,
    simulated_samples,
    small_config,
)


@pytest.fixture(scope="module")
def config():
    return load_config(overrides={k: v for k, v in SMALL_TRAINER.items() if k != "trainer"}, environ={})


@pytest.fixture(scope="module")
def batches(config):
    simulator = EventSimulator(config.simulator, config.schema)
    samples = [s for s, _ in simulator.labelled_samples(900, config.joiner.window_ms)]
    batcher = SampleBatcher(config.schema)
    return [batcher.build(samples[i : i + 300]) for i in range(0, 900, 300)]


def exported_model(config, batches, model_dir) -> TrainingModel:
    """A cold-start model trained on two batches and exported as pass 1."""
    model = TrainingModel.fresh(config.schema, config.model, config.embedding_store)
    for batch in batches[:2]:
        model.step.step(batch)
    manifest = PassManifest(1, "samples", [PartitionRange(0, 0, 600, 600)], 600, 0, 600, 0, 1, None)
    ModelExporter(model_dir).export(model, manifest)
    return model


def test_paper_online_from_random_weights_is_refused_in_one_line(config):
    with pytest.raises(UserError) as caught:
        TrainingModel.fresh(
            config.schema, dataclasses.replace(config.model, preset="paper-online"), config.embedding_store
        )
    message = str(caught.value)
    assert "\n" not in message and "--init-from MODEL_DIR" in message and "cold-start" in message


def test_a_warm_start_is_the_exported_model_with_this_runs_settings(config, batches, tmp_path):
    source = exported_model(config, batches, tmp_path / "model")
    online = dataclasses.replace(config.model, preset="paper-online")
    bigger = dataclasses.replace(config.embedding_store, budget_bytes=2 * config.embedding_store.budget_bytes)
    warm, files = load_warm_model(tmp_path / "model", config.schema, online, bigger)
    assert files.pass_index == 1
    assert dense_tensors_equal(warm.network.state_dict(), source.network.state_dict())
    assert np.array_equal(warm.step.domain_stats.observed, source.step.domain_stats.observed)
    assert len(warm.table) == len(source.table) and warm.table.config.budget_bytes == bigger.budget_bytes
    assert np.array_equal(warm.step.score(batches[2]), source.step.score(batches[2]))  # same predictions
    assert warm.step.optimizer.param_groups[0]["lr"] == pytest.approx(5e-6)  # Adam afresh, this run's rate
    warm.step.step(batches[2])  # and it trains on
    assert not dense_tensors_equal(warm.network.state_dict(), source.network.state_dict())


def test_a_warm_start_from_another_network_names_what_differs(config, batches, tmp_path):
    exported_model(config, batches, tmp_path / "model")
    other = dataclasses.replace(config.model, tower_hidden=[16])
    with pytest.raises(UserError, match=r"model\.tower_hidden is \[32\] there, \[16\] here"):
        load_warm_model(tmp_path / "model", config.schema, other, config.embedding_store)
    with pytest.raises(UserError, match="no LATEST file"):
        load_warm_model(tmp_path / "nothing", config.schema, config.model, config.embedding_store)
    torch.manual_seed(0)  # keep the global generator as other tests expect it


def config_file(pipeline_config, path, **model: object):
    """The small trainer settings, the test's broker and topics, as a --config file."""
    settings = {**SMALL_TRAINER, "kafka": kafka_overrides(pipeline_config)}
    settings["model"] = {**SMALL_TRAINER["model"], **model}
    settings["monitoring"] = {"enabled": False}
    path.write_text(yaml.safe_dump(settings))
    return str(path)


@pytest.mark.kafka
def test_train_init_from_continues_an_exported_model_after_its_data(pipeline_config, tmp_path, capsys):
    config = small_config(pipeline_config)
    fill_samples_topic(config, simulated_samples(config, 1200))
    IncrementalTrainer(config, TrainerPaths.from_config(config, str(tmp_path / "first"))).run(RunOptions(max_passes=4))
    model_dir = tmp_path / "first" / "model"
    online = config_file(pipeline_config, tmp_path / "online.yaml", preset="paper-online")

    # paper-online from random weights: one line saying why and what to pass.
    assert main(["--config", online, "train", "--run-dir", str(tmp_path / "cold"), "--stop-at-end"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--init-from MODEL_DIR" in error

    run_dir = tmp_path / "warm"
    assert (
        main(["--config", online, "train", "--run-dir", str(run_dir), "--stop-at-end", "--init-from", str(model_dir)])
        == 0
    )
    manifests = read_manifests(run_dir)
    first_end = read_manifests(tmp_path / "first")[-1].next_offsets()
    assert {r.partition: r.start_offset for r in manifests[0].ranges} == first_end  # after the model's data
    assert sum(m.samples for m in manifests) == 400
    records = read_pass_records(run_dir)
    first_rows = read_pass_records(tmp_path / "first")[-1].table_rows
    assert records[0].table_rows >= first_rows  # the exported rows came along
    # A restart resumes from its own checkpoint, not from the export again.
    assert (
        main(["--config", online, "train", "--run-dir", str(run_dir), "--stop-at-end", "--init-from", "/nowhere"]) == 0
    )
    assert len(read_manifests(run_dir)) == len(manifests)
