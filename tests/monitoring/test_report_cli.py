"""`pepnet report RUN_DIR` end to end: prints the PNG paths; a missing run log is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitoring.run_log import append_pass_record
from tests.monitoring.test_run_log import make_record

REPO_ROOT = Path(__file__).resolve().parents[2]


def pepnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_report_writes_and_lists_the_plots(tmp_path: Path) -> None:
    for index in range(3):
        append_pass_record(tmp_path, make_record(index))
    result = pepnet("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.split()]
    assert len(printed) == 6
    assert all(path.parent == tmp_path / "plots" and path.stat().st_size > 1000 for path in printed)


def test_missing_run_log_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = pepnet("report", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no run log at {tmp_path / 'passes.jsonl'}"
