"""``pepnet report RUN_DIR``: PNG plots of a finished run (monitoring.report) into RUN_DIR/plots/."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from stream.config.errors import UserError

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "report",
        help="plot a run's passes (loss, AUC, table bytes, evictions, samples/s, lag)",
        description="Reads RUN_DIR/passes.jsonl and writes one PNG per topic into RUN_DIR/plots/.",
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", nargs="?", default=None, help="run directory (default: run_dir of the config)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet report``; returns the exit code."""
    from monitoring.report import render_run_report  # matplotlib is slow to import; keep --help fast

    run_dir = args.run_dir or config.run_dir
    try:
        plots = render_run_report(run_dir)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from error
    for plot in plots:
        print(plot.path)
    return 0
