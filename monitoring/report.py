"""Per-run report: PNG plots of a finished run's passes (`<run_dir>/passes.jsonl` -> `<run_dir>/plots/`).

Plots say only what the data can carry: an AUC point stands for at least ``MIN_POSITIVES``
positives (consecutive passes are pooled until they hold that many; a task or domain that never
gets there is named as not drawn), a 0.5 line marks chance, losses of rare and frequent tasks share
a log axis, a panel with nothing but zeros says so in words, and long runs drop the markers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from monitoring.run_log import PassRecord, read_pass_records
from monitoring.significance import MIN_POSITIVES

PLOTS_DIR_NAME = "plots"
_MIB = 1024 * 1024
MARKERS_UP_TO_POINTS = 30  # beyond this many points per line, markers only clutter


@dataclass
class RenderedPlot:
    """One PNG written by the report and the figure it was drawn from (for inspection in tests)."""

    path: Path
    figure: Figure


@dataclass
class _Series:
    """One line: x (pass indices) and y, with a matplotlib line style."""

    x: list[int]
    y: list[float]
    style: str = "-"


@dataclass
class _Panel:
    """One axes: a title, a y label, named series, and what to say about what is not drawn."""

    title: str
    ylabel: str
    series: dict[str, _Series]
    log_y: bool = False
    reference: tuple[float, str] | None = None  # a horizontal line: (y, label)
    notes: list[str] = field(default_factory=list)
    empty_text: str = "no data"
    x_range: tuple[int, int] | None = None  # (first, last) pass: every panel of a figure shares it


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

    x is the pass index. Per-pass lines (loss, table, throughput, lag) have one point per record;
    a missing value is NaN. AUC lines have one point per window of passes holding at least
    ``MIN_POSITIVES`` positives (see :func:`pooled_auc`).
    """
    if not records:
        raise ValueError("records must hold at least one pass")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = [record.pass_index for record in records]
    lag = [float(r.consumer_lag) for r in records]
    auc_panels, auc_hidden = _auc_panels(records)
    footers = {"auc.png": auc_hidden}
    figures = {
        "loss.png": [
            _Panel("Training loss per task", "binary cross-entropy (log scale)",
                   _per_key(records, "loss"), log_y=True),
            _Panel("Progressive logloss per task", "logloss (log scale)", _per_key(records, "logloss"), log_y=True),
        ],  # fmt: skip
        "auc.png": auc_panels,
        "table_bytes.png": [
            _Panel("Embedding table memory", "MiB", {
                "table bytes": _Series(x, [r.table_bytes / _MIB for r in records]),
                "budget": _Series(x, [r.budget_bytes / _MIB for r in records], "--"),
            })
        ],  # fmt: skip
        "evictions.png": [_evictions_panel(records)],
        "samples_per_s.png": [
            _Panel("Training throughput", "samples / s", {"samples/s": _Series(x, [r.samples_per_s for r in records])})
        ],
        "consumer_lag.png": [
            _Panel("Consumer lag at pass end", "messages", {"lag": _Series(x, lag)}, log_y=_spans_decades(lag),
                   empty_text="no lag at any pass end")
        ],  # fmt: skip
    }
    for panel in (panel for panels in figures.values() for panel in panels):
        panel.x_range = panel.x_range or (x[0], x[-1])
    return [_write_figure(out / name, panels, footers.get(name, "")) for name, panels in figures.items()]


def pooled_auc(
    records: Sequence[PassRecord], auc_of: dict[int, float], positives_of: dict[int, int], min_positives: int
) -> tuple[list[int], list[float]]:
    """AUC points over windows of consecutive passes holding >= ``min_positives`` positives.

    ``auc_of`` / ``positives_of`` map a pass index to its AUC and positives. Each point is the
    positive-weighted mean of its passes' AUCs, placed at the window's last pass; passes without a
    defined AUC are skipped, and a final window short of ``min_positives`` is not drawn.
    """
    xs: list[int] = []
    ys: list[float] = []
    weight = weighted = 0.0
    for record in records:
        value, count = auc_of.get(record.pass_index, math.nan), positives_of.get(record.pass_index, 0)
        if not math.isfinite(value) or count <= 0:
            continue
        weight += count
        weighted += value * count
        if weight >= min_positives:
            xs.append(record.pass_index)
            ys.append(weighted / weight)
            weight = weighted = 0.0
    return xs, ys


def _per_key(records: Sequence[PassRecord], field_name: str, missing: float = float("nan")) -> dict[str, _Series]:
    """{key: one value per pass} for a `dict[str, number]` field of the records."""
    x = [record.pass_index for record in records]
    keys = sorted({key for record in records for key in getattr(record, field_name)})
    return {
        key: _Series(x, [float(getattr(record, field_name).get(key, missing)) for record in records]) for key in keys
    }


def _auc_panels(records: Sequence[PassRecord]) -> tuple[list[_Panel], str]:
    """One panel per task with something to draw: the all-domain AUC (solid) and each domain's
    (dashed), pooled to ``MIN_POSITIVES`` positives per point (runs logged without positives draw
    every pass); and a line naming the tasks left out, with their positives in the run."""
    tasks = sorted({task for record in records for task in record.auc})
    counted = all(record.positives for record in records)
    x_range = (records[0].pass_index, records[-1].pass_index)
    panels = []
    left_out = []
    for task in tasks:
        domains = sorted({domain for record in records for domain in record.auc_by_domain.get(task, {})})
        cells: dict[str, tuple[dict[int, float], dict[int, int], str]] = {
            "all domains": (
                {r.pass_index: r.auc.get(task, math.nan) for r in records},
                {r.pass_index: r.positives.get(task, 0) for r in records},
                "-",
            )
        }
        for domain in domains:
            cells[domain] = (
                {r.pass_index: r.auc_by_domain.get(task, {}).get(domain, math.nan) for r in records},
                {r.pass_index: r.positives_by_domain.get(task, {}).get(domain, 0) for r in records},
                "--",
            )
        series: dict[str, _Series] = {}
        hidden = []
        for name, (auc_of, positives_of, style) in cells.items():
            if counted:
                xs, ys = pooled_auc(records, auc_of, positives_of, MIN_POSITIVES)
            else:
                xs, ys = [r.pass_index for r in records], [auc_of[r.pass_index] for r in records]
            if xs:
                series[name] = _Series(xs, ys, style)
            else:
                hidden.append(name)
        total = sum(r.positives.get(task, 0) for r in records)
        if not series:
            left_out.append(f"{task} ({total:,})")
            continue
        notes = []
        if counted:
            notes.append(f"each point: passes pooled to >= {MIN_POSITIVES:,} positives ({total:,} in the run)")
        else:
            notes.append("positives not logged: every pass drawn, small ones are noise")
        if hidden:
            notes.append(f"not drawn (< {MIN_POSITIVES:,} positives in the run): {', '.join(hidden)}")
        panels.append(_Panel(f"Progressive AUC: {task}", "AUC", series, reference=(0.5, "chance (0.5)"),
                             notes=notes, x_range=x_range))  # fmt: skip
    footer = f"not drawn (fewer than {MIN_POSITIVES:,} positives in the run): {', '.join(left_out)}" if left_out else ""
    if not panels:
        panels.append(_Panel("Progressive AUC", "AUC", {}, empty_text=footer or "no AUC in this run"))
    return panels, footer


def _evictions_panel(records: Sequence[PassRecord]) -> _Panel:
    """Evictions per pass by reason; reasons that never evicted are left out (and named)."""
    series = _per_key(records, "evictions", missing=0.0)
    idle = [reason for reason, line in series.items() if not any(line.y)]
    drawn = {reason: line for reason, line in series.items() if reason not in idle}
    notes = [f"no evictions for: {', '.join(idle)}"] if idle and drawn else []
    return _Panel("Evictions per pass by reason", "rows", drawn, notes=notes,
                  empty_text="no evictions in this run: no row expired, the table stayed under its budget")  # fmt: skip


def _spans_decades(values: list[float]) -> bool:
    """True when the positive values span more than two decades (a log axis reads better)."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) > 100


def _draw(axes: Axes, panel: _Panel) -> None:
    points = max((len(line.x) for line in panel.series.values()), default=0)
    marker = "o" if points <= MARKERS_UP_TO_POINTS else None
    for name, line in panel.series.items():
        axes.plot(line.x, line.y, line.style, marker=marker, markersize=3, linewidth=1.2, label=name)
    if panel.reference is not None and panel.series:
        axes.axhline(panel.reference[0], color="grey", linestyle=":", linewidth=1, label=panel.reference[1])
    if panel.log_y and panel.series:
        axes.set_yscale("log")
    axes.set_title(panel.title)
    axes.set_xlabel("pass")
    axes.set_ylabel(panel.ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.x_range is not None:
        axes.set_xlim(panel.x_range[0] - 0.5, panel.x_range[1] + 0.5)
    axes.grid(True, alpha=0.3)
    if panel.series:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        axes.text(0.5, 0.5, panel.empty_text, transform=axes.transAxes, ha="center", va="center", color="grey")
        axes.set_yticks([])
    if panel.notes:
        axes.text(0.0, -0.22, "\n".join(panel.notes), transform=axes.transAxes, fontsize="small", va="top",
                  color="dimgrey")  # fmt: skip


def _write_figure(path: Path, panels: list[_Panel], footer: str = "") -> RenderedPlot:
    """Draw the panels (one column, two beyond two panels), ``footer`` as the figure's title line,
    and save them atomically as PNG (temp + rename)."""
    columns = 2 if len(panels) > 2 else 1
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(9.5 * columns, 3.8 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, panel in enumerate(panels):
        _draw(figure.add_subplot(rows, columns, index + 1), panel)
    if footer:
        figure.suptitle(footer, fontsize="small", color="dimgrey")
    temporary = path.with_name(path.name + ".tmp")
    figure.savefig(temporary, format="png", dpi=100)
    os.replace(temporary, path)
    return RenderedPlot(path=path, figure=figure)
