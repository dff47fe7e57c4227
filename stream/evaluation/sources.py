"""Where ``pepnet evaluate`` gets its labelled batches: the simulator, a JSON-lines file of samples.

A source yields :class:`LabelledBatch` chunks of any size in stream order; :func:`fixed_size_batches`
cuts them into the evaluation's mini-batches, so every source feeds the models the same way. A
source whose data carries oracle probabilities (the simulator, or a file written from it) sets
them per row; rows without one hold NaN. The Kafka topic source lives in ``topic_source.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pepnet.batch import SampleBatch
from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.events.batching import SampleBatcher
from stream.events.formats import LabelledSample, compact_json, sample_from_dict
from stream.events.validation import EventValidator, InvalidEvent

ORACLE_FIELD = "oracle"  # optional field of a sample line: task -> probability of its label
FILE_CHUNK_LINES = 4096  # lines decoded and batched together


@dataclass
class LabelledBatch:
    """Samples as a batch, with the oracle probability of each label when the data has one
    (float32 ``[B, T]``, NaN where a row carries none; None when no row of the chunk does)."""

    batch: SampleBatch
    oracle: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.batch)


class BatchSource(Protocol):
    """Labelled samples in stream order, for a progressive evaluation."""

    expected_samples: int | None  # for progress bars; None when unknown before reading

    def chunks(self) -> Iterator[LabelledBatch]:
        """The samples in order, in chunks of any size."""
        ...

    def describe(self, samples: int) -> str:
        """What was evaluated, for the report: e.g. ``2,000,000 simulated impressions (seed 7)``."""
        ...


def fixed_size_batches(chunks: Iterator[LabelledBatch], batch_size: int) -> Iterator[LabelledBatch]:
    """Consecutive batches of exactly ``batch_size`` rows (the last one may be shorter) out of
    chunks of any size; rows of a chunk without oracle probabilities get NaN in a batch that has some."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    pending: list[LabelledBatch] = []
    held = 0
    for chunk in chunks:
        if not len(chunk):
            continue
        pending.append(chunk)
        held += len(chunk)
        if held < batch_size:
            continue
        merged = _concat(pending)
        start = 0
        while held - start >= batch_size:
            yield _slice(merged, start, start + batch_size)
            start += batch_size
        pending = [_slice(merged, start, held)] if start < held else []
        held -= start
    if held:
        yield _concat(pending)


def _slice(chunk: LabelledBatch, start: int, stop: int) -> LabelledBatch:
    oracle = chunk.oracle[start:stop] if chunk.oracle is not None else None
    return LabelledBatch(chunk.batch.slice(start, stop), oracle)


def _concat(chunks: list[LabelledBatch]) -> LabelledBatch:
    if len(chunks) == 1:
        return chunks[0]
    batch = SampleBatch.concat([c.batch for c in chunks])
    if all(c.oracle is None for c in chunks):
        return LabelledBatch(batch)
    tasks = batch.labels.shape[1]
    oracle = [c.oracle if c.oracle is not None else np.full((len(c), tasks), np.nan, np.float32) for c in chunks]
    return LabelledBatch(batch, np.concatenate(oracle))


class SimulatedSource:
    """``events`` impressions of the seeded simulator, labelled with the join window, with oracle
    probabilities; built from columns (no Python object per sample)."""

    def __init__(self, config: PipelineConfig, events: int) -> None:
        if events <= 0:
            raise ValueError(f"events must be > 0, got {events}")
        self.config = config
        self.expected_samples: int | None = events

    def chunks(self) -> Iterator[LabelledBatch]:
        from stream.simulator.generator import EventSimulator  # loads the population: only when read

        config = self.config
        simulator = EventSimulator(config.simulator, config.schema)
        batcher = SampleBatcher(config.schema)
        for columns, oracle in simulator.labelled_columns(self.expected_samples or 0, config.joiner.window_ms):
            yield LabelledBatch(batcher.from_columns(columns), oracle.astype(np.float32))

    def describe(self, samples: int) -> str:
        sim = self.config.simulator
        return (
            f"{samples:,} simulated impressions (simulator seed {sim.seed}, "
            f"domain interaction strength {sim.domain_interaction_strength:g})"
        )


class JsonLinesSource:
    """Labelled samples from a JSON-lines file in the samples topic's format (docs/events.md), in
    file order. A line may carry ``"oracle": {task: probability}`` (files written by
    ``pepnet simulate --samples-file``). A bad line stops the run with ``FILE:LINE: field: reason``."""

    def __init__(self, path: str | Path, schema: FeatureSchema) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"--input {self.path}: no such file")
        self.schema = schema
        self.batcher = SampleBatcher(schema)
        self.expected_samples: int | None = None

    def chunks(self) -> Iterator[LabelledBatch]:
        lines: list[tuple[int, str]] = []
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    lines.append((number, line))
                if len(lines) == FILE_CHUNK_LINES:
                    yield self._decode(lines)
                    lines = []
        if lines:
            yield self._decode(lines)

    def describe(self, samples: int) -> str:
        return f"{samples:,} labelled samples from {self.path}"

    def _decode(self, lines: list[tuple[int, str]]) -> LabelledBatch:
        try:
            records = [json.loads(line) for _number, line in lines]
            samples = [sample_from_dict(r) for r in records]
            batch = self.batcher.build(samples)
            oracle = oracle_rows([r.get(ORACLE_FIELD) for r in records], self.schema.task_names)
        except (ValueError, KeyError, TypeError, AttributeError):
            for number, line in lines:
                reason = sample_line_error(line, self.batcher)
                if reason is not None:
                    raise UserError(f"{self.path}:{number}: {reason}") from None
            raise
        return LabelledBatch(batch, oracle)


def oracle_rows(values: list[Any], tasks: list[str]) -> np.ndarray | None:
    """float32 ``[n, T]`` oracle probabilities of ``values`` (a dict task -> probability or None per
    row; NaN where absent), None when no row has one; ValueError naming a bad value."""
    if all(v is None for v in values):
        return None
    out = np.full((len(values), len(tasks)), np.nan, dtype=np.float32)
    for row, value in enumerate(values):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{ORACLE_FIELD}: expected an object task -> probability, got {type(value).__name__}")
        for j, task in enumerate(tasks):
            p = value.get(task)
            if p is None:
                continue
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                raise ValueError(f"{ORACLE_FIELD}.{task}: expected a probability in [0, 1], got {p!r}")
            out[row, j] = p
    return out


def sample_line_error(line: str | bytes, batcher: SampleBatcher) -> str | None:
    """Why one line is not a usable labelled sample (``field: reason``), or None if it is."""
    try:
        record = json.loads(line)
    except ValueError as error:
        return f"not valid JSON ({error})"
    if not isinstance(record, dict):
        return "expected a JSON object (a labelled sample)"
    for name in ("sample_id", "impression", "labels", "join"):
        if name not in record:
            return f"{name}: required field of a labelled sample is missing (format: docs/events.md)"
    if not isinstance(record["impression"], dict):
        return "impression: expected an object"
    validator = EventValidator(batcher.schema)
    try:
        # Historical data may be of any age; the wall-clock bound on future times does not apply.
        validator.impression(compact_json(record["impression"]), now_ms=math.inf)  # type: ignore[arg-type]
    except InvalidEvent as error:
        return f"impression.{error}"
    try:
        sample: LabelledSample = sample_from_dict(record)
        batcher.build([sample])
        oracle_rows([record.get(ORACLE_FIELD)], batcher.schema.task_names)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return str(error)
    return None
