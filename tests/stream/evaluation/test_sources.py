"""Batch sources: fixed-size re-batching, a JSON-lines file of samples reproducing the simulator run
exactly, files without oracle probabilities, and bad lines named by file and line."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from stream.config.errors import UserError
from stream.config.pipeline import load_config
from stream.evaluation.progressive import ORACLE, run_evaluation
from stream.evaluation.sources import JsonLinesSource, LabelledBatch, SimulatedSource, fixed_size_batches
from stream.events.batching import SampleBatcher
from stream.simulator.generator import EventSimulator
from tests.stream.events.test_batching import SCHEMA, sample

EVENTS = 3000
MODELS = ["pepnet", "shared_bottom"]


@pytest.fixture(scope="module")
def config():
    return load_config(environ={})


@pytest.fixture(scope="module")
def samples_file(config, tmp_path_factory):
    path = tmp_path_factory.mktemp("samples") / "samples.jsonl"
    EventSimulator(config.simulator, config.schema).write_samples(path, EVENTS, config.joiner.window_ms)
    return path


def chunk(first: int, n: int, oracle: bool) -> LabelledBatch:
    batch = SampleBatcher(SCHEMA).build([sample(first + i, {}, {}, {"click": 1}) for i in range(n)])
    probabilities = np.full((n, 2), 0.5, dtype=np.float32) if oracle else None
    return LabelledBatch(batch, probabilities)


def test_fixed_size_batches_keep_the_order_and_fill_missing_oracles_with_nan():
    chunks = [chunk(0, 3, True), chunk(3, 5, False), chunk(8, 1, True), chunk(9, 7, True)]
    batches = list(fixed_size_batches(iter(chunks), 4))
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert [s for b in batches for s in b.batch.sample_id] == [f"s{i}" for i in range(16)]
    oracle = np.concatenate([b.oracle for b in batches])
    assert np.isnan(oracle[3:8]).all() and not np.isnan(oracle[:3]).any() and not np.isnan(oracle[8:]).any()
    assert [len(b) for b in fixed_size_batches(iter([chunk(0, 5, False)]), 2)] == [2, 2, 1]
    assert next(fixed_size_batches(iter([chunk(0, 2, False)]), 2)).oracle is None


def test_simulator_columns_make_the_same_batches_as_its_samples(config):
    simulator = EventSimulator(config.simulator, config.schema)
    batcher = SampleBatcher(config.schema)
    from_objects = batcher.build([s for s, _ in simulator.labelled_samples(5000, config.joiner.window_ms)])
    chunks = [batcher.from_columns(c) for c, _ in simulator.labelled_columns(5000, config.joiner.window_ms)]
    assert len(chunks) == 2  # 4096 + 904: the simulator's chunks
    for name in ("keys", "key_mask", "domain", "dense", "labels", "label_mask", "user_id", "event_time_ms"):
        joined = np.concatenate([getattr(c, name) for c in chunks])
        assert joined.dtype == getattr(from_objects, name).dtype and np.array_equal(joined, getattr(from_objects, name))
    assert [s for c in chunks for s in c.sample_id] == from_objects.sample_id


def without_nan(value: object) -> object:
    """``value`` with every NaN float replaced by None (NaN != NaN would fail equal results)."""
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def figures(result) -> dict:
    return without_nan({m: {"auc": s.auc, "gauc": s.gauc, "logloss": s.logloss} for m, s in result.models.items()})


def test_a_file_written_from_the_simulator_reproduces_the_simulator_run_exactly(config, samples_file):
    simulated = run_evaluation(config, MODELS, SimulatedSource(config, EVENTS), 256)
    from_file = run_evaluation(config, MODELS, JsonLinesSource(samples_file, config.schema), 256)
    assert ORACLE in from_file.models
    assert figures(from_file) == figures(simulated)  # bit for bit, oracle included
    assert from_file.source == f"3,000 labelled samples from {samples_file}"
    assert simulated.source.startswith("3,000 simulated impressions")


def test_a_file_without_oracle_probabilities_has_no_oracle_column(config, samples_file, tmp_path):
    plain = tmp_path / "plain.jsonl"
    with samples_file.open() as src, plain.open("w") as dst:
        for line in list(src)[:1500]:
            record = json.loads(line)
            record.pop("oracle")
            dst.write(json.dumps(record) + "\n\n")  # blank lines are skipped
    result = run_evaluation(config, ["shared_bottom"], JsonLinesSource(plain, config.schema), 256)
    assert set(result.models) == {"shared_bottom"} and result.events == 1500
    assert math.isnan(result.oracle_gap("shared_bottom"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["impression"].update(domain="tab99"), "impression.domain: unknown domain 'tab99'"),
        (lambda r: r.pop("impression"), "impression: required field"),
        (lambda r: r["labels"].update(click=3), "labels.click: must be 0 or 1"),
        (lambda r: r["oracle"].update(click=1.5), "oracle.click: expected a probability in [0, 1]"),
        (lambda r: r["impression"]["sparse"].update(tag=[1.5]), "impression.sparse.tag"),
    ],
)
def test_a_bad_line_stops_the_run_naming_the_file_line_and_field(config, samples_file, tmp_path, edit, message):
    lines = samples_file.read_text().splitlines()[:10]
    record = json.loads(lines[6])
    edit(record)
    lines[6] = json.dumps(record)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="^" + re.escape(f"{bad}:7: {message}")):
        list(JsonLinesSource(bad, config.schema).chunks())


def test_a_line_that_is_not_json_is_named(config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(UserError, match=f"^{bad}:1: not valid JSON"):
        list(JsonLinesSource(bad, config.schema).chunks())
