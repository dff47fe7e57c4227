"""Serve an exported model: load ``LATEST`` (dense weights + table snapshot and deltas), score impressions.

``ExportedModel.load`` is the one loader of exports: a table exported by one trainer process or
by N ranks (one directory per shard, merged into one table) loads the same way.

This is the proof that exports serve: nothing of the trainer's checkpoints is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from embedding_store.table import EmbeddingTable
from pepnet.auc import auc
from pepnet.config import ModelConfig
from pepnet.schema import FeatureSchema
from stream.config.loader import build_dataclass
from stream.events.batching import SampleBatcher
from stream.events.formats import Impression, JoinInfo, LabelledSample
from stream.scoring.model_files import ModelFileError, latest_pass, pass_files, read_dense_state
from stream.trainer.training_model import TrainingModel


@dataclass
class ScoredImpression:
    """Predicted probability per task of one impression (and its labels when it had some)."""

    impression_id: str
    probabilities: dict[str, float]
    labels: dict[str, int]

    def to_json(self) -> str:
        """One output line: impression id and the probability of each task."""
        return json.dumps({"impression_id": self.impression_id, "probabilities": self.probabilities}, sort_keys=True)


class ExportedModel:
    """A model read back from an export directory; :meth:`score` predicts impressions."""

    def __init__(self, model: TrainingModel, pass_index: int) -> None:
        self.model = model
        self.pass_index = pass_index
        self.batcher = SampleBatcher(model.schema)

    @classmethod
    def load(cls, model_dir: str | Path, pass_index: int | None = None) -> ExportedModel:
        """The pass ``LATEST`` names (or ``pass_index``): verified dense weights and the table chain up
        to that pass only. A :class:`ModelFileError` (one line, a ``UserError``) when it cannot be used."""
        model_dir = Path(model_dir)
        files = latest_pass(model_dir) if pass_index is None else pass_files(model_dir, pass_index)
        dense_state = read_dense_state(files.path)
        try:
            schema = build_dataclass(FeatureSchema, files.description["schema"], "schema")
            model_config = build_dataclass(ModelConfig, files.description["model"], "model")
        except (KeyError, ValueError) as error:
            raise ModelFileError("damaged", f"{files.path}/model.json describes no model ({error})") from None
        try:
            table = EmbeddingTable.load_export([model_dir / d for d in files.table_dirs], up_to_pass=files.pass_index)
        except (OSError, ValueError) as error:
            raise ModelFileError("damaged", f"table export of pass {files.pass_index} unusable: {error}") from None
        try:
            model = TrainingModel(schema, model_config, table)
            model.load_dense_state(dense_state)
        except (KeyError, RuntimeError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise ModelFileError(
                "damaged", f"{files.path}: dense weights do not match model.json ({first_line[:200]})"
            ) from None
        return cls(model, files.pass_index)

    def score(self, impressions: list[Impression | LabelledSample]) -> list[ScoredImpression]:
        """Probabilities of every task for each impression (table lookups never create rows)."""
        samples = [_as_sample(item) for item in impressions]
        if not samples:
            return []
        batch = self.batcher.build(samples)
        probabilities = self.model.step.score(batch)
        tasks = self.model.schema.task_names
        return [
            ScoredImpression(s.sample_id, dict(zip(tasks, map(float, row), strict=True)), dict(s.labels))
            for s, row in zip(samples, probabilities.tolist(), strict=True)
        ]


def _as_sample(item: Impression | LabelledSample) -> LabelledSample:
    if isinstance(item, LabelledSample):
        return item
    return LabelledSample(item.impression_id, item, dict(item.labels or {}), JoinInfo(window_ms=0, source="score"))


def score_stream(
    model: ExportedModel, events: Iterable[Impression | LabelledSample], batch_size: int = 1024
) -> Iterator[ScoredImpression]:
    """Score ``events`` in batches of ``batch_size``."""
    pending: list[Impression | LabelledSample] = []
    for event in events:
        pending.append(event)
        if len(pending) >= batch_size:
            yield from model.score(pending)
            pending = []
    if pending:
        yield from model.score(pending)


def write_scores(
    model: ExportedModel, events: Iterable[Impression | LabelledSample], out: TextIO
) -> list[ScoredImpression]:
    """Score ``events`` and write one JSON line per impression to ``out``; returns them, in order."""
    scored = []
    for item in score_stream(model, events):
        out.write(item.to_json() + "\n")
        scored.append(item)
    return scored


def labelled_auc(scored: list[ScoredImpression], tasks: list[str]) -> dict[str, float]:
    """AUC per task over the scored impressions that carry that task's label (NaN if undefined)."""
    out = {}
    for task in tasks:
        rows = [(s.labels[task], s.probabilities[task]) for s in scored if task in s.labels]
        out[task] = auc(np.array([r[0] for r in rows]), np.array([r[1] for r in rows])) if rows else float("nan")
    return out
