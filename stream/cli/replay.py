"""``pepnet replay``: backfill a time or offset range of the samples topic into a model directory."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep --help fast: the replay module pulls in Kafka and torch
    from stream.config.pipeline import PipelineConfig
    from stream.trainer.replay import ReplayRange


def _offsets(text: str) -> dict[int, int]:
    """``0:120,1:98`` -> {0: 120, 1: 98}."""
    try:
        pairs = [item.split(":") for item in text.split(",") if item]
        return {int(p): int(o) for p, o in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PARTITION:OFFSET[,...], got {text!r}") from None


def add_range_arguments(parser: argparse.ArgumentParser) -> None:
    """--from-time/--to-time/--from-offsets/--to-offsets: a range of a topic (see :func:`range_from_args`)."""
    parser.add_argument("--from-time", type=int, default=None, help="start: event time in ms (message timestamp)")
    parser.add_argument("--to-time", type=int, default=None, help="end (exclusive): event time in ms")
    parser.add_argument("--from-offsets", type=_offsets, default=None, help="start offsets, e.g. 0:120,1:98")
    parser.add_argument("--to-offsets", type=_offsets, default=None, help="end offsets (exclusive)")


def range_from_args(args: argparse.Namespace) -> ReplayRange:
    """The ReplayRange of the arguments of :func:`add_range_arguments`; UserError if it is empty."""
    from stream.config.errors import UserError
    from stream.trainer.replay import ReplayRange

    try:
        return ReplayRange(args.from_time, args.to_time, args.from_offsets, args.to_offsets)
    except ValueError as error:
        raise UserError(str(error)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "replay",
        help="backfill a time or offset range of the samples topic (own consumer group, progress + ETA)",
        description="Train on a range of the samples topic, stopping at the end offsets captured at start.",
    )
    parser.add_argument("--run-dir", required=True, help="where the replay writes model/, checkpoints/, passes.jsonl")
    add_range_arguments(parser)
    parser.add_argument("--continue", dest="continue_model", action="store_true",
                        help="train on from the model of the newest checkpoint in --run-dir")  # fmt: skip
    parser.add_argument("--group-id", default=None, help="consumer group (default: <trainer.consumer_group>-replay)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet replay``; returns the exit code."""
    from stream.trainer.replay import replay

    span = range_from_args(args)
    summary = replay(config, args.run_dir, span, args.continue_model, args.group_id, progress=not args.no_progress)
    trained = sum(r.samples for r in summary.passes)
    print(f"replayed {len(summary.passes)} passes ({trained} samples) into {args.run_dir}")
    return 0
