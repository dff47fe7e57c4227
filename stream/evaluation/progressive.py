"""Offline progressive validation of several architectures over one stream of labelled batches.

Every batch is scored by every model *before* that model trains on it, so each prediction is an
out-of-sample prediction made with everything learnt so far (the online setting). The batches come
from a :class:`stream.evaluation.sources.BatchSource`: the simulator, a JSON-lines file of samples or
a range of a samples topic. When the data carries oracle probabilities (the simulator's hidden
model) they are scored the same way, giving the best achievable AUC per cell.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pepnet.auc import auc, gauc, logloss
from pepnet.config import ARCHITECTURES
from pepnet.model import build_model
from pepnet.model_input import InputShape
from pepnet.train_step import TrainStep
from stream.config.pipeline import PipelineConfig
from stream.evaluation.sources import BatchSource, LabelledBatch, fixed_size_batches
from stream.trainer.training_model import new_table

log = logging.getLogger(__name__)

ORACLE = "oracle"
MIN_POSITIVES = 1000  # cells with fewer positives are too noisy to compare models on
# (model, baseline, strict): "model's AUC >= (or >, when strict) the baseline's" is reported per
# cell when both were evaluated; the acceptance figures of PEPNet and its EPNet half.
COMPARISONS: tuple[tuple[str, str, bool], ...] = (
    ("pepnet", "shared_bottom", False),
    ("pepnet", "mmoe", False),
    ("epnet_only", "shared_bottom", True),
)

BatchCallback = Callable[[LabelledBatch, dict[str, np.ndarray]], None]


@dataclass
class ModelScores:
    """Progressive metrics of one model (or the oracle): AUC per task x domain, GAUC per task."""

    auc: dict[str, dict[str, float]]  # task -> domain -> AUC (NaN when the cell has one class)
    auc_all: dict[str, float]  # task -> AUC over all domains
    gauc: dict[str, float]  # task -> GAUC grouped by user
    logloss: dict[str, float]  # task -> mean BCE
    train_samples_per_s: float = math.nan  # score + train throughput of this model in the run


@dataclass
class EvaluationResult:
    """Everything ``pepnet evaluate`` reports; ``samples``/``positives`` count labels per task -> domain.

    ``source`` says what was evaluated (e.g. ``2,000,000 simulated impressions (simulator seed 7, ...)``
    or ``50,000 labelled samples from data.jsonl``); the ``oracle`` model is present only when the
    data carried oracle probabilities for every sample.
    """

    source: str
    events: int
    batch_size: int
    tasks: list[str]
    domains: list[str]
    samples: dict[str, dict[str, int]]
    positives: dict[str, dict[str, int]]
    models: dict[str, ModelScores] = field(default_factory=dict)

    @property
    def has_oracle(self) -> bool:
        return ORACLE in self.models

    def comparable_cells(self, min_positives: int = MIN_POSITIVES) -> list[tuple[str, str]]:
        """(task, domain) cells with at least ``min_positives`` positives and both classes."""
        return [
            (t, d)
            for t in self.tasks
            for d in self.domains
            if self.positives[t][d] >= min_positives and self.samples[t][d] > self.positives[t][d]
        ]

    def win_rate(self, model: str, baseline: str, min_positives: int = MIN_POSITIVES, strict: bool = False) -> float:
        """Share of comparable cells where ``model``'s AUC >= ``baseline``'s (> when ``strict``)."""
        cells = self.comparable_cells(min_positives)
        if not cells:
            return math.nan
        a, b = self.models[model].auc, self.models[baseline].auc
        wins = [a[t][d] > b[t][d] if strict else a[t][d] >= b[t][d] for t, d in cells]
        return sum(wins) / len(cells)

    def oracle_gap(self, model: str, min_positives: int = MIN_POSITIVES) -> float:
        """Mean (oracle AUC - model AUC) over comparable cells; NaN without an oracle."""
        cells = self.comparable_cells(min_positives)
        if not cells or not self.has_oracle:
            return math.nan
        o, m = self.models[ORACLE].auc, self.models[model].auc
        return float(np.mean([o[t][d] - m[t][d] for t, d in cells]))

    def mean_auc(self, model: str, min_positives: int = MIN_POSITIVES) -> float:
        """Mean AUC over comparable cells."""
        cells = self.comparable_cells(min_positives)
        return float(np.mean([self.models[model].auc[t][d] for t, d in cells])) if cells else math.nan

    def summary(self) -> dict[str, dict[str, float]]:
        """Per model: mean AUC and oracle gap over the comparable cells, PEPNet's win rate against it."""
        out: dict[str, dict[str, float]] = {}
        for name in self.models:
            if name == ORACLE:
                continue
            entry = {"mean_auc": self.mean_auc(name), "oracle_gap": self.oracle_gap(name)}
            if "pepnet" in self.models and name != "pepnet":
                entry["pepnet_win_rate"] = self.win_rate("pepnet", name)
            out[name] = entry
        return out

    def comparisons(self) -> list[tuple[str, str, bool, float]]:
        """(model, baseline, strict, share of comparable cells won) for :data:`COMPARISONS` evaluated here."""
        return [
            (model, baseline, strict, self.win_rate(model, baseline, strict=strict))
            for model, baseline, strict in COMPARISONS
            if model in self.models and baseline in self.models
        ]


@dataclass
class _Collected:
    """Labels, predictions and grouping columns of the whole run (row-aligned)."""

    labels: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    domain: list[np.ndarray] = field(default_factory=list)
    user: list[np.ndarray] = field(default_factory=list)
    oracle: list[np.ndarray] = field(default_factory=list)
    predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)


def build_train_step(config: PipelineConfig, architecture: str) -> TrainStep:
    """A fresh table and model of ``architecture`` with the configured settings."""
    model_config = dataclasses.replace(config.model, architecture=architecture)
    table = new_table(config.embedding_store, seed=config.embedding_store.seed)
    shape = InputShape.from_schema(config.schema, table.dim)
    return TrainStep(build_model(model_config, shape), table, config.schema, model_config)


def run_evaluation(
    config: PipelineConfig,
    architectures: list[str],
    source: BatchSource,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    on_batch: BatchCallback | None = None,
) -> EvaluationResult:
    """Progressive validation of ``architectures`` on the batches of ``source``.

    All models see the same batches in the same order; each has its own table. The tables end a
    pass every ``trainer.pass_samples`` samples, as in the streaming trainer. ``on_batch`` gets
    every batch with each model's predictions ``[B, T]`` made before training on it.
    """
    unknown = [a for a in architectures if a not in ARCHITECTURES]
    if unknown or not architectures:
        raise ValueError(f"models must be a non-empty list from {', '.join(ARCHITECTURES)}, got {architectures}")
    threads = torch.get_num_threads()
    if config.model.num_threads > 0:  # one thread (the default) makes a run repeat bit for bit
        torch.set_num_threads(config.model.num_threads)
    try:
        return _run(config, architectures, source, batch_size, progress, on_batch)
    finally:
        torch.set_num_threads(threads)


def _run(
    config: PipelineConfig,
    architectures: list[str],
    source: BatchSource,
    batch_size: int,
    progress: Callable[[int], None] | None,
    on_batch: BatchCallback | None,
) -> EvaluationResult:
    steps = {name: build_train_step(config, name) for name in architectures}
    busy_s = dict.fromkeys(architectures, 0.0)
    collected = _Collected(predictions={name: [] for name in architectures})
    seen, next_pass, pass_index = 0, config.trainer.pass_samples, 0
    for labelled in fixed_size_batches(source.chunks(), batch_size):
        batch = labelled.batch
        collected.labels.append(batch.labels)
        collected.mask.append(batch.label_mask)
        collected.domain.append(batch.domain)
        collected.user.append(batch.user_id)
        collected.oracle.append(
            labelled.oracle if labelled.oracle is not None else np.full(batch.labels.shape, np.nan, np.float32)
        )
        predictions = {}
        for name, step in steps.items():
            start = time.perf_counter()
            predictions[name] = step.score(batch)
            step.step(batch)
            busy_s[name] += time.perf_counter() - start
            collected.predictions[name].append(predictions[name])
        if on_batch is not None:
            on_batch(labelled, predictions)
        seen += len(batch)
        if seen >= next_pass:
            for step in steps.values():
                step.table.end_pass(pass_index, int(batch.event_time_ms.max()))
            pass_index += 1
            next_pass += config.trainer.pass_samples
        if progress is not None:
            progress(len(batch))
    if not seen:
        raise ValueError(f"the source holds no labelled sample: {source.describe(0)}")
    result = _score(collected, config, source.describe(seen), seen, batch_size)
    for name, seconds in busy_s.items():
        result.models[name].train_samples_per_s = seen / seconds if seconds > 0 else math.nan
    return result


def _score(
    collected: _Collected, config: PipelineConfig, source: str, events: int, batch_size: int
) -> EvaluationResult:
    tasks, domains = config.schema.task_names, config.schema.domains
    labels = np.concatenate(collected.labels)
    mask = np.concatenate(collected.mask)
    domain = np.concatenate(collected.domain)
    user = np.concatenate(collected.user)
    result = EvaluationResult(
        source=source,
        events=events,
        batch_size=batch_size,
        tasks=tasks,
        domains=list(domains),
        samples={t: {} for t in tasks},
        positives={t: {} for t in tasks},
    )
    for j, task in enumerate(tasks):
        for k, name in enumerate(domains):
            cell = mask[:, j] & (domain == k)
            result.samples[task][name] = int(cell.sum())
            result.positives[task][name] = int(labels[cell, j].sum())
    scored = {name: np.concatenate(chunks) for name, chunks in collected.predictions.items()}
    oracle = np.concatenate(collected.oracle)
    observed_oracle = oracle[mask]
    if np.isfinite(observed_oracle).all():
        scored[ORACLE] = oracle
    elif np.isfinite(observed_oracle).any():
        log.warning(
            "oracle probabilities cover only %d of %d labels: no oracle column",
            int(np.isfinite(observed_oracle).sum()),
            observed_oracle.size,
        )
    for model, predictions in scored.items():
        result.models[model] = _model_scores(labels, mask, domain, user, predictions, tasks, domains)
    return result


def _model_scores(
    labels: np.ndarray,
    mask: np.ndarray,
    domain: np.ndarray,
    user: np.ndarray,
    predictions: np.ndarray,
    tasks: list[str],
    domains: list[str],
) -> ModelScores:
    scores = ModelScores(auc={}, auc_all={}, gauc={}, logloss={})
    for j, task in enumerate(tasks):
        observed = mask[:, j]
        y, p = labels[observed, j], predictions[observed, j]
        scores.auc[task] = {
            name: auc(y[domain[observed] == k], p[domain[observed] == k]) for k, name in enumerate(domains)
        }
        scores.auc_all[task] = auc(y, p)
        scores.gauc[task] = gauc(y, p, user[observed])
        scores.logloss[task] = logloss(y, p)
    return scores
