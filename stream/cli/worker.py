"""``pepnet worker``: one worker of the impression/action joiner (``--processes N`` or N workers for N cores)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="join actions to impressions in event time and produce labelled samples",
        description=(
            "Starts one joiner worker (joiner.engine: a confluent-kafka consume loop, or faust-streaming). "
            "Workers with the same joiner.app_id share the partitions of the impressions/actions topics; "
            "invalid events go to the dead-letter topic."
        ),
    )
    parser.add_argument("--app-id", default=None, help="consumer group and state name (default joiner.app_id)")
    parser.add_argument(
        "--output",
        choices=["samples", "samples_replay"],
        default=None,
        help="kafka.topics role receiving the samples (default joiner.output)",
    )
    parser.add_argument(
        "--engine", choices=["kafka", "faust"], default=None, help="consumer engine (default joiner.engine)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="run N consume-loop processes in one consumer group, metrics summed on one endpoint (kafka engine)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    from stream.config.pipeline import replace_section
    from stream.joiner.worker import run_worker  # torch is slow to import; keep --help fast

    options = (("app_id", args.app_id), ("output", args.output), ("engine", args.engine))
    changes = {k: v for k, v in options if v is not None}
    if changes:
        config = replace_section(config, "joiner", **changes)
    return run_worker(config, args.log_level, args.processes)
