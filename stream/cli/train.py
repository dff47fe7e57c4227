"""``pepnet train``: the incremental trainer on the samples topic."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train PEPNet incrementally from the samples topic (passes, exports, checkpoints)",
        description="Consume the samples topic pass by pass; resume from the newest intact checkpoint.",
    )
    parser.add_argument("--max-passes", type=int, default=0, help="stop once this many passes exist (0 = never)")
    parser.add_argument(
        "--stop-at-end", action="store_true", help="train up to the end offsets seen at start, then stop"
    )
    parser.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many seconds without data")
    parser.add_argument("--run-dir", default=None, help="run directory (default: run_dir of the config)")
    parser.add_argument(
        "--init-from",
        metavar="MODEL_DIR",
        default=None,
        help="warm start: begin from this exported model (dense weights + table) when the run has no "
        "checkpoint yet; same as trainer.init_from (needed by model.preset paper-online)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet train``; returns the exit code."""
    import dataclasses
    import math

    from stream.config.errors import UserError
    from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths
    from stream.trainer.stop_signals import stop_on_signals

    if args.max_passes < 0:
        raise UserError(f"--max-passes must be >= 0, got {args.max_passes}")
    if not (math.isfinite(args.idle_timeout) and args.idle_timeout >= 0):
        raise UserError(f"--idle-timeout must be >= 0 seconds (0 = never), got {args.idle_timeout}")
    if args.init_from is not None:
        config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, init_from=args.init_from))
    paths = TrainerPaths.from_config(config, args.run_dir)
    trainer = IncrementalTrainer(config, paths)
    with stop_on_signals(trainer.stop) as signals:
        summary = trainer.run(
            RunOptions(max_passes=args.max_passes, stop_at_end=args.stop_at_end, idle_timeout_s=args.idle_timeout)
        )
    trained = sum(r.samples for r in summary.passes)
    stopped = f"stopped by {signals[0]}; " if signals else ""
    print(
        f"{stopped}trained {len(summary.passes)} passes ({trained} samples); next pass {summary.next_pass}; "
        f"model in {paths.model_dir}, run log in {paths.run_dir / 'passes.jsonl'}"
    )
    return 0
