"""``pepnet demo``: broker, topics, simulator, worker and trainer end to end, then a per-pass table."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig
    from stream.demo.pipeline import DemoResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to ``subparsers``."""
    from stream.demo.settings import DemoSettings

    defaults = DemoSettings()
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally for a few passes and print a per-pass table (about a minute)",
        description="Local broker, fresh topics, simulator, `pepnet worker`, trainer; then a per-pass table.",
    )
    parser.add_argument("--impressions", type=int, default=defaults.impressions, help="simulated impressions")
    parser.add_argument("--passes", type=int, default=defaults.passes, help="passes to train")
    parser.add_argument("--pass-samples", type=int, default=defaults.pass_samples, help="samples per pass")
    parser.add_argument("--run-dir", default="", help="output directory (default: runs/demo-<unix time>)")
    parser.add_argument("--keep-broker", action="store_true", help="leave a broker started by the demo running")
    parser.add_argument(
        "--hold-metrics",
        action="store_true",
        help="after the summary, keep the worker and the trainer's metrics endpoint up until Ctrl-C (a last scrape)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet demo``; returns the exit code."""
    from stream.config.errors import UserError
    from stream.demo.pipeline import run_demo
    from stream.demo.settings import DemoSettings

    for option, value in (("--impressions", args.impressions), ("--passes", args.passes),
                          ("--pass-samples", args.pass_samples)):  # fmt: skip
        if value <= 0:
            raise UserError(f"{option} must be > 0, got {value}")
    settings = DemoSettings(args.impressions, args.passes, args.pass_samples, args.run_dir, args.keep_broker)

    def finished(result: DemoResult) -> None:
        print_summary(result, config)
        if args.hold_metrics:
            print("the worker's and the trainer's metrics stay up for a last scrape; Ctrl-C to exit", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:  # not signal.pause(): Ctrl-C may reach another thread and never wake it
                    time.sleep(0.5)

    result = run_demo(args.config, settings, say=lambda line: print(line, flush=True), finished=finished)
    return 0 if result.records else 1


def print_summary(result: DemoResult, config: PipelineConfig) -> None:
    """The per-pass table and where the run's outputs are."""
    from stream.demo.pipeline import pass_table

    print()
    print(pass_table(result.records, config.schema.task_names))
    print()
    run_dir = result.run_dir
    print(f"exported model: {result.model_dir}")
    print(f"score it: pepnet score --model-dir {result.model_dir} --input {run_dir / 'holdout.jsonl'} --limit 5")
    print(f"run log: {run_dir / 'passes.jsonl'}")
    if result.plots:
        print(f"run report: {result.plots[0].parent} ({len(result.plots)} plots)")
    print(f"the demo's topics and broker, for later commands: --config {run_dir / 'config.yaml'}")
