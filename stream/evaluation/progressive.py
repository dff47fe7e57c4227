"""Offline progressive validation of several architectures over one simulated stream (no Kafka).

Every batch is scored by every model *before* that model trains on it, so each prediction is an
out-of-sample prediction made with everything learnt so far (the online setting). The simulator's
oracle probabilities are scored the same way, giving the best achievable AUC per cell.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pepnet.auc import auc, gauc, logloss
from pepnet.batch import SampleBatch
from pepnet.config import ARCHITECTURES
from pepnet.model import build_model
from pepnet.model_input import InputShape
from pepnet.train_step import TrainStep
from stream.config.pipeline import PipelineConfig
from stream.events.batching import SampleBatcher
from stream.simulator.generator import EventSimulator
from stream.trainer.training_model import new_table

log = logging.getLogger(__name__)

ORACLE = "oracle"
MIN_POSITIVES = 1000  # cells with fewer positives are too noisy to compare models on


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
    """Everything ``pepnet evaluate`` reports; ``samples``/``positives`` count labels per task -> domain."""

    events: int
    batch_size: int
    seed: int
    tasks: list[str]
    domains: list[str]
    samples: dict[str, dict[str, int]]
    positives: dict[str, dict[str, int]]
    models: dict[str, ModelScores] = field(default_factory=dict)

    def comparable_cells(self, min_positives: int = MIN_POSITIVES) -> list[tuple[str, str]]:
        """(task, domain) cells with at least ``min_positives`` positives and both classes."""
        return [
            (t, d)
            for t in self.tasks
            for d in self.domains
            if self.positives[t][d] >= min_positives and self.samples[t][d] > self.positives[t][d]
        ]

    def win_rate(self, model: str, baseline: str, min_positives: int = MIN_POSITIVES) -> float:
        """Share of comparable cells where ``model``'s AUC >= ``baseline``'s."""
        cells = self.comparable_cells(min_positives)
        if not cells:
            return math.nan
        a, b = self.models[model].auc, self.models[baseline].auc
        return sum(a[t][d] >= b[t][d] for t, d in cells) / len(cells)

    def oracle_gap(self, model: str, min_positives: int = MIN_POSITIVES) -> float:
        """Mean (oracle AUC - model AUC) over comparable cells."""
        cells = self.comparable_cells(min_positives)
        if not cells:
            return math.nan
        o, m = self.models[ORACLE].auc, self.models[model].auc
        return float(np.mean([o[t][d] - m[t][d] for t, d in cells]))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per model: mean oracle gap, and PEPNet's win rate against it (when PEPNet was evaluated)."""
        out: dict[str, dict[str, float]] = {}
        for name in self.models:
            if name == ORACLE:
                continue
            entry = {"oracle_gap": self.oracle_gap(name)}
            if "pepnet" in self.models and name != "pepnet":
                entry["pepnet_win_rate"] = self.win_rate("pepnet", name)
            out[name] = entry
        return out


@dataclass
class _Collected:
    """Labels, predictions and grouping columns of the whole run (row-aligned)."""

    labels: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    domain: list[np.ndarray] = field(default_factory=list)
    user: list[np.ndarray] = field(default_factory=list)
    predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)


def simulated_batches(config: PipelineConfig, events: int, batch_size: int) -> Iterator[tuple[SampleBatch, np.ndarray]]:
    """Batches of the simulated stream labelled with the joiner's window, with oracle probabilities [B, T]."""
    simulator = EventSimulator(config.simulator, config.schema)
    batcher = SampleBatcher(config.schema)
    tasks = config.schema.task_names
    samples, oracle = [], []
    for sample, probabilities in simulator.labelled_samples(events, config.joiner.window_ms):
        samples.append(sample)
        oracle.append([probabilities[t] for t in tasks])
        if len(samples) == batch_size:
            yield batcher.build(samples), np.asarray(oracle, dtype=np.float32)
            samples, oracle = [], []
    if samples:
        yield batcher.build(samples), np.asarray(oracle, dtype=np.float32)


def build_train_step(config: PipelineConfig, architecture: str) -> TrainStep:
    """A fresh table and model of ``architecture`` with the configured settings."""
    model_config = dataclasses.replace(config.model, architecture=architecture)
    table = new_table(config.embedding_store, seed=config.embedding_store.seed)
    shape = InputShape.from_schema(config.schema, table.dim)
    return TrainStep(build_model(model_config, shape), table, config.schema, model_config)


def run_evaluation(
    config: PipelineConfig,
    architectures: list[str],
    events: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Progressive validation of ``architectures`` on ``events`` simulated impressions.

    All models see the same batches in the same order; each has its own table. The tables end a
    pass every ``trainer.pass_samples`` samples, as in the streaming trainer.
    """
    unknown = [a for a in architectures if a not in ARCHITECTURES]
    if unknown or not architectures:
        raise ValueError(f"models must be a non-empty list from {', '.join(ARCHITECTURES)}, got {architectures}")
    steps = {name: build_train_step(config, name) for name in architectures}
    busy_s = dict.fromkeys(architectures, 0.0)
    collected = _Collected(predictions={name: [] for name in [*architectures, ORACLE]})
    seen, next_pass, pass_index = 0, config.trainer.pass_samples, 0
    for batch, oracle in simulated_batches(config, events, batch_size):
        collected.labels.append(batch.labels)
        collected.mask.append(batch.label_mask)
        collected.domain.append(batch.domain)
        collected.user.append(batch.user_id)
        collected.predictions[ORACLE].append(oracle)
        for name, step in steps.items():
            start = time.perf_counter()
            collected.predictions[name].append(step.score(batch))
            step.step(batch)
            busy_s[name] += time.perf_counter() - start
        seen += len(batch)
        if seen >= next_pass:
            for step in steps.values():
                step.table.end_pass(pass_index, int(batch.event_time_ms.max()))
            pass_index += 1
            next_pass += config.trainer.pass_samples
        if progress is not None:
            progress(len(batch))
    result = _score(collected, config, events, batch_size)
    for name, seconds in busy_s.items():
        result.models[name].train_samples_per_s = seen / seconds if seconds > 0 else math.nan
    return result


def _score(collected: _Collected, config: PipelineConfig, events: int, batch_size: int) -> EvaluationResult:
    tasks, domains = config.schema.task_names, config.schema.domains
    labels = np.concatenate(collected.labels)
    mask = np.concatenate(collected.mask)
    domain = np.concatenate(collected.domain)
    user = np.concatenate(collected.user)
    result = EvaluationResult(
        events=events,
        batch_size=batch_size,
        seed=config.simulator.seed,
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
    for model, chunks in collected.predictions.items():
        predictions = np.concatenate(chunks)
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
        result.models[model] = scores
    return result


def write_results(result: EvaluationResult, out_dir: str | Path) -> list[Path]:
    """``evaluation.csv`` (one row per model x task x domain, ``all`` rows carry GAUC),
    ``evaluation.json`` and ``evaluation.md``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, md_path = out / "evaluation.csv", out / "evaluation.json", out / "evaluation.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "task", "domain", "samples", "positives", "auc", "gauc", "logloss"])
        for model, scores in result.models.items():
            for task in result.tasks:
                for domain in result.domains:
                    writer.writerow(
                        [
                            model,
                            task,
                            domain,
                            result.samples[task][domain],
                            result.positives[task][domain],
                            _fmt(scores.auc[task][domain]),
                            "",
                            "",
                        ]
                    )
                writer.writerow(
                    [
                        model,
                        task,
                        "all",
                        sum(result.samples[task].values()),
                        sum(result.positives[task].values()),
                        _fmt(scores.auc_all[task]),
                        _fmt(scores.gauc[task]),
                        _fmt(scores.logloss[task]),
                    ]
                )
    payload = dataclasses.asdict(result)
    payload["summary"] = result.summary()
    payload["comparable_cells"] = [list(c) for c in result.comparable_cells()]
    json_path.write_text(json.dumps(_json_safe(payload), indent=1))
    md_path.write_text(format_markdown(result))
    return [csv_path, json_path, md_path]


def format_markdown(result: EvaluationResult) -> str:
    """The AUC table (task x domain rows, one column per model), GAUC per task, and the summary."""
    models = list(result.models)
    cells = set(result.comparable_cells())
    lines = [
        f"Progressive validation on {result.events:,} simulated impressions (simulator seed {result.seed}, "
        f"batch {result.batch_size}). Cells marked * have >= {MIN_POSITIVES} positives.",
        "",
        "| task | domain | positives | " + " | ".join(models) + " |",
        "|---|---|---:|" + "---:|" * len(models),
    ]
    for task in result.tasks:
        for domain in result.domains:
            mark = "*" if (task, domain) in cells else ""
            values = " | ".join(_fmt(result.models[m].auc[task][domain]) for m in models)
            lines.append(f"| {task} | {domain}{mark} | {result.positives[task][domain]:,} | {values} |")
    lines += ["", "| GAUC (by user) | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for task in result.tasks:
        lines.append(f"| {task} | " + " | ".join(_fmt(result.models[m].gauc[task]) for m in models) + " |")
    lines += [
        "",
        "| model | mean AUC gap to oracle | PEPNet AUC >= model in cells | score+train samples/s |",
        "|---|---:|---:|---:|",
    ]
    for model, entry in result.summary().items():
        win = entry.get("pepnet_win_rate", math.nan)
        speed = result.models[model].train_samples_per_s
        lines.append(f"| {model} | {_fmt(entry['oracle_gap'])} | {_pct(win)} | {speed:,.0f} |")
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.0f}%"


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
