"""``pepnet worker``: one faust worker of the impression/action joiner (run N for N times the work)."""

from __future__ import annotations

import argparse
import dataclasses

from stream.config import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="join actions to impressions in event time and produce labelled samples",
        description=(
            "Starts one joiner worker (faust-streaming). Workers with the same joiner.app_id share "
            "the partitions of the impressions/actions topics; invalid events go to the dead-letter topic."
        ),
    )
    parser.add_argument("--app-id", default=None, help="consumer group and state name (default joiner.app_id)")
    parser.add_argument(
        "--output",
        choices=["samples", "samples_replay"],
        default=None,
        help="kafka.topics role receiving the samples (default joiner.output)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    from stream.joiner.worker import run_worker  # faust is slow to import; keep --help fast

    changes = {k: v for k, v in (("app_id", args.app_id), ("output", args.output)) if v is not None}
    if changes:
        config = dataclasses.replace(config, joiner=dataclasses.replace(config.joiner, **changes))
    return run_worker(config, args.log_level)
