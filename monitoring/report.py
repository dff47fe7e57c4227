"""Per-run report: PNG plots of a finished run's passes (`<run_dir>/passes.jsonl` -> `<run_dir>/plots/`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitoring.run_log import PassRecord, read_pass_records

PLOTS_DIR_NAME = "plots"
_MIB = 1024 * 1024


@dataclass
class RenderedPlot:
    """One PNG written by the report and the figure it was drawn from (for inspection in tests)."""

    path: Path
    figure: Figure


@dataclass
class _Panel:
    """One axes: a title, a y label and named series, each with one value per pass."""

    title: str
    ylabel: str
    series: dict[str, list[float]]
    styles: dict[str, str] | None = None


def render_run_report(run_dir: str | os.PathLike[str]) -> list[RenderedPlot]:
    """Read `<run_dir>/passes.jsonl` and write the plots into `<run_dir>/plots/`.

    Raises FileNotFoundError without a run log and ValueError when it holds no pass.
    """
    records = read_pass_records(run_dir)
    if not records:
        raise ValueError(f"{Path(run_dir) / 'passes.jsonl'}: no finished pass to plot")
    return render_report(records, Path(run_dir) / PLOTS_DIR_NAME)


def render_report(records: Sequence[PassRecord], out_dir: str | os.PathLike[str]) -> list[RenderedPlot]:
    """Write one PNG per topic (loss, AUC, table bytes, evictions, throughput, lag) into `out_dir`.

    Every line has exactly one point per record, x = pass index; a missing value (task or eviction
    reason absent from a pass) is NaN, or 0 for eviction counts.
    """
    if not records:
        raise ValueError("records must hold at least one pass")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = [record.pass_index for record in records]
    figures = {
        "loss.png": [
            _Panel("Training loss per task", "binary cross-entropy", _per_key(records, "loss")),
            _Panel("Progressive logloss per task", "logloss", _per_key(records, "logloss")),
        ],
        "auc.png": _auc_panels(records),
        "table_bytes.png": [
            _Panel(
                "Embedding table memory",
                "MiB",
                {
                    "table bytes": [r.table_bytes / _MIB for r in records],
                    "budget": [r.budget_bytes / _MIB for r in records],
                },
                {"budget": "--"},
            )
        ],
        "evictions.png": [_Panel("Evictions per pass by reason", "rows", _per_key(records, "evictions", missing=0.0))],
        "samples_per_s.png": [
            _Panel("Training throughput", "samples / s", {"samples/s": [r.samples_per_s for r in records]})
        ],
        "consumer_lag.png": [
            _Panel("Consumer lag at pass end", "messages", {"lag": [float(r.consumer_lag) for r in records]})
        ],
    }
    return [_write_figure(out / name, x, panels) for name, panels in figures.items()]


def _per_key(records: Sequence[PassRecord], field_name: str, missing: float = float("nan")) -> dict[str, list[float]]:
    """{key: one value per pass} for a `dict[str, number]` field of the records."""
    keys = sorted({key for record in records for key in getattr(record, field_name)})
    return {key: [float(getattr(record, field_name).get(key, missing)) for record in records] for key in keys}


def _auc_panels(records: Sequence[PassRecord]) -> list[_Panel]:
    """One panel per task: the all-domain AUC (solid) and the AUC of each domain (dashed)."""
    tasks = sorted({task for record in records for task in record.auc})
    panels = []
    for task in tasks:
        domains = sorted({domain for record in records for domain in record.auc_by_domain.get(task, {})})
        series = {"all domains": [record.auc.get(task, float("nan")) for record in records]}
        for domain in domains:
            series[domain] = [record.auc_by_domain.get(task, {}).get(domain, float("nan")) for record in records]
        panels.append(_Panel(f"Progressive AUC: {task}", "AUC", series, dict.fromkeys(domains, "--")))
    return panels


def _write_figure(path: Path, x: list[int], panels: list[_Panel]) -> RenderedPlot:
    """Draw the panels (one column, two beyond two panels) and save them atomically as PNG (temp + rename)."""
    columns = 2 if len(panels) > 2 else 1
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(8 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for name, values in panel.series.items():
            style = (panel.styles or {}).get(name, "-")
            axes.plot(x, values, style, marker="o", markersize=3, label=name)
        axes.set_title(panel.title)
        axes.set_xlabel("pass")
        axes.set_ylabel(panel.ylabel)
        axes.grid(True, alpha=0.3)
        if panel.series:
            axes.legend(fontsize="small")
    temporary = path.with_name(path.name + ".tmp")
    figure.savefig(temporary, format="png", dpi=100)
    os.replace(temporary, path)
    return RenderedPlot(path=path, figure=figure)
