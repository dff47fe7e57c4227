"""Report: PNG files exist and every line has one point per pass of a real run log."""

from __future__ import annotations

import math

import pytest

from monitoring.report import render_run_report
from monitoring.run_log import append_pass_record
from tests.monitoring.test_run_log import make_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_draws_one_point_per_pass_in_every_line(tmp_path) -> None:
    passes = 7
    for index in range(passes):
        record = make_record(index, loss=0.6 - 0.01 * index)
        if index == 4:
            record.evictions = {"ttl": 1, "min_updates": 2}  # a reason seen in one pass only
            record.auc["click"] = math.nan
        append_pass_record(tmp_path, record)

    plots = render_run_report(tmp_path)

    names = sorted(plot.path.name for plot in plots)
    assert names == sorted(
        ["loss.png", "auc.png", "table_bytes.png", "evictions.png", "samples_per_s.png", "consumer_lag.png"]
    )
    for plot in plots:
        assert plot.path.parent == tmp_path / "plots"
        assert plot.path.read_bytes()[:8] == PNG_MAGIC
        lines = [line for axes in plot.figure.axes for line in axes.get_lines()]
        assert lines, plot.path.name
        for line in lines:
            assert len(line.get_xdata()) == passes, (plot.path.name, line.get_label())
            assert list(line.get_xdata()) == list(range(passes))
    by_name = {plot.path.name: plot for plot in plots}
    eviction_labels = {line.get_label() for line in by_name["evictions.png"].figure.axes[0].get_lines()}
    assert eviction_labels == {"budget", "min_updates", "ttl"}
    loss_line = by_name["loss.png"].figure.axes[0].get_lines()[0]
    assert loss_line.get_label() == "click"
    assert list(loss_line.get_ydata()) == pytest.approx([0.6 - 0.01 * i for i in range(passes)])
    auc_axes = by_name["auc.png"].figure.axes  # one panel per task
    assert [axes.get_title() for axes in auc_axes] == ["Progressive AUC: click", "Progressive AUC: like"]
    assert {line.get_label() for line in auc_axes[0].get_lines()} == {"all domains", "tab0", "tab1"}


def test_empty_run_log_is_an_error(tmp_path) -> None:
    (tmp_path / "passes.jsonl").write_text("")
    with pytest.raises(ValueError, match="no finished pass"):
        render_run_report(tmp_path)
