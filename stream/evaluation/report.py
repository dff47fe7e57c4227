"""What ``pepnet evaluate`` writes: the CSV, JSON and markdown of a result, and per-row predictions."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import TextIO

import numpy as np

from stream.evaluation.progressive import MIN_POSITIVES, EvaluationResult
from stream.evaluation.sources import LabelledBatch


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
                    samples, positives = result.samples[task][domain], result.positives[task][domain]
                    writer.writerow([model, task, domain, samples, positives, _fmt(scores.auc[task][domain]), "", ""])
                samples, positives = sum(result.samples[task].values()), sum(result.positives[task].values())
                all_domains = [_fmt(scores.auc_all[task]), _fmt(scores.gauc[task]), _fmt(scores.logloss[task])]
                writer.writerow([model, task, "all", samples, positives, *all_domains])
    payload = dataclasses.asdict(result)
    payload["summary"] = result.summary()
    payload["comparisons"] = [
        {"model": m, "baseline": b, "strict": strict, "win_rate": rate} for m, b, strict, rate in result.comparisons()
    ]
    payload["comparable_cells"] = [list(c) for c in result.comparable_cells()]
    json_path.write_text(json.dumps(_json_safe(payload), indent=1))
    md_path.write_text(format_markdown(result))
    return [csv_path, json_path, md_path]


def format_markdown(result: EvaluationResult) -> str:
    """The AUC table (task x domain rows, one column per model), GAUC per task, and the summary."""
    models = list(result.models)
    cells = set(result.comparable_cells())
    lines = [
        f"Progressive validation on {result.source}, batch {result.batch_size}. "
        f"Cells marked * have >= {MIN_POSITIVES} positives.",
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
    gap = " mean AUC gap to oracle |" if result.has_oracle else ""
    lines += [
        "",
        f"| model | mean AUC in * cells |{gap} PEPNet AUC >= model in * cells | score+train samples/s |",
        "|---|---:|" + ("---:|" if result.has_oracle else "") + "---:|---:|",
    ]
    for model, entry in result.summary().items():
        win = entry.get("pepnet_win_rate", math.nan)
        speed = result.models[model].train_samples_per_s
        gap_cell = f" {_fmt(entry['oracle_gap'])} |" if result.has_oracle else ""
        lines.append(f"| {model} | {_fmt(entry['mean_auc'])} |{gap_cell} {_pct(win)} | {speed:,.0f} |")
    comparisons = result.comparisons()
    if comparisons:
        lines += [
            "",
            f"Cells with >= {MIN_POSITIVES} positives: {len(cells)} of {len(result.tasks) * len(result.domains)}.",
        ]
        for model, baseline, strict, rate in comparisons:
            won = round(rate * len(cells)) if not math.isnan(rate) else 0
            lines.append(f"* {model} AUC {'>' if strict else '>='} {baseline} in {_pct(rate)} of them ({won} cells)")
    return "\n".join(lines) + "\n"


class PredictionWriter:
    """Per-row predictions as JSON lines: ``{"sample_id", "domain", "labels": {task: 0/1},
    "predictions": {model: {task: p}}}`` (unobserved tasks are left out of ``labels``)."""

    def __init__(self, out: TextIO, tasks: list[str], domains: list[str]) -> None:
        self.out = out
        self.tasks = tasks
        self.domains = domains

    def __call__(self, labelled: LabelledBatch, predictions: dict[str, np.ndarray]) -> None:
        batch = labelled.batch
        rounded = {name: np.round(p.astype(np.float64), 6).tolist() for name, p in predictions.items()}
        labels, mask = batch.labels.astype(np.int64).tolist(), batch.label_mask.tolist()
        for row, sample_id in enumerate(batch.sample_id):
            record = {
                "sample_id": sample_id,
                "domain": self.domains[int(batch.domain[row])],
                "labels": {t: labels[row][j] for j, t in enumerate(self.tasks) if mask[row][j]},
                "predictions": {name: dict(zip(self.tasks, p[row], strict=True)) for name, p in rounded.items()},
            }
            self.out.write(json.dumps(record, separators=(",", ":")) + "\n")


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
