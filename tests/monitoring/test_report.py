"""Report: the PNG files of a run log, what each plot draws and what it says it leaves out."""

from __future__ import annotations

import math

import pytest

from monitoring.report import pooled_auc, render_run_report
from monitoring.run_log import append_pass_record
from tests.monitoring.test_run_log import make_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PER_PASS_PLOTS = ("loss.png", "table_bytes.png", "samples_per_s.png", "consumer_lag.png")


def counted_record(index: int, loss: float = 0.5):
    """A pass with 400 click positives (300 in tab0, 100 in tab1)."""
    record = make_record(index, loss=loss)
    record.positives = {"click": 400, "like": 0}
    record.positives_by_domain = {"click": {"tab0": 300, "tab1": 100}}
    return record


def texts(axes) -> str:
    return "\n".join(text.get_text() for text in axes.texts)


def test_report_writes_every_plot_and_one_point_per_pass_where_passes_are_drawn(tmp_path) -> None:
    passes = 7
    for index in range(passes):
        record = counted_record(index, loss=0.6 - 0.01 * index)
        if index == 4:
            record.evictions = {"ttl": 1, "min_updates": 2}  # a reason seen in one pass only
            record.auc["click"] = math.nan
        append_pass_record(tmp_path, record)

    plots = {plot.path.name: plot for plot in render_run_report(tmp_path)}

    assert sorted(plots) == sorted(["auc.png", "evictions.png", *PER_PASS_PLOTS])
    for plot in plots.values():
        assert plot.path.parent == tmp_path / "plots"
        assert plot.path.read_bytes()[:8] == PNG_MAGIC
    for name in PER_PASS_PLOTS:
        lines = [line for axes in plots[name].figure.axes for line in axes.get_lines()]
        assert lines and all(list(line.get_xdata()) == list(range(passes)) for line in lines), name
    loss_axes = plots["loss.png"].figure.axes[0]
    assert loss_axes.get_yscale() == "log"  # rare tasks' small losses stay readable
    assert loss_axes.get_lines()[0].get_label() == "click"
    assert list(loss_axes.get_lines()[0].get_ydata()) == pytest.approx([0.6 - 0.01 * i for i in range(passes)])
    eviction_lines = {line.get_label() for line in plots["evictions.png"].figure.axes[0].get_lines()}
    assert eviction_lines == {"budget", "min_updates", "ttl"}


def test_auc_points_stand_for_at_least_1000_positives_and_the_rest_is_named(tmp_path) -> None:
    for index in range(7):
        record = counted_record(index)
        if index == 4:
            record.auc["click"] = math.nan  # undefined in that pass: skipped
        append_pass_record(tmp_path, record)

    figure = {plot.path.name: plot for plot in render_run_report(tmp_path)}["auc.png"].figure
    auc = figure.axes
    assert [axes.get_title() for axes in auc] == ["Progressive AUC: click"]  # "like": no positive at all
    click = {line.get_label(): line for line in auc[0].get_lines()}
    assert set(click) == {"all domains", "tab0", "chance (0.5)"}
    assert list(click["all domains"].get_xdata()) == [2, 6]  # 400+400+400, then 400+(NaN)+400+400
    assert list(click["all domains"].get_ydata()) == pytest.approx([0.7, 0.7])
    assert list(click["tab0"].get_xdata()) == [3]  # 4 x 300; the last 900 are not enough
    assert list(click["chance (0.5)"].get_ydata()) == [0.5, 0.5]
    assert "not drawn (< 1,000 positives in the run): tab1" in texts(auc[0])
    assert figure.get_suptitle() == "not drawn (fewer than 1,000 positives in the run): like (0)"


def test_pooled_auc_weighs_passes_by_their_positives() -> None:
    records = [make_record(i) for i in range(3)]
    xs, ys = pooled_auc(records, {0: 0.6, 1: 0.9, 2: 0.5}, {0: 250, 1: 750, 2: 10}, 1000)
    assert (xs, ys) == ([1], [pytest.approx(0.825)])


def test_a_run_logged_without_positives_draws_every_pass_and_says_so(tmp_path) -> None:
    for index in range(3):  # a run log written before the positives were logged
        record = make_record(index)
        record.positives, record.positives_by_domain = {}, {}
        append_pass_record(tmp_path, record)
    auc = {plot.path.name: plot for plot in render_run_report(tmp_path)}["auc.png"].figure.axes[0]
    click = {line.get_label(): line for line in auc.get_lines()}
    assert list(click["all domains"].get_xdata()) == [0, 1, 2]
    assert "positives not logged: every pass drawn" in texts(auc)


def test_all_zero_evictions_are_said_in_words_and_long_runs_drop_markers(tmp_path) -> None:
    for index in range(67):
        record = counted_record(index)
        record.evictions = {"ttl": 0, "budget": 0}
        append_pass_record(tmp_path, record)
    plots = {plot.path.name: plot for plot in render_run_report(tmp_path)}
    evictions = plots["evictions.png"].figure.axes[0]
    assert not evictions.get_lines()
    assert "no evictions in this run" in texts(evictions)
    lines = plots["samples_per_s.png"].figure.axes[0].get_lines()
    assert lines[0].get_marker() in ("None", None, "")


def test_empty_run_log_is_an_error(tmp_path) -> None:
    (tmp_path / "passes.jsonl").write_text("")
    with pytest.raises(ValueError, match="no finished pass"):
        render_run_report(tmp_path)
