"""``pepnet topics create|list``: the pipeline's topics (kafka.topics) on the configured cluster."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create or list the pipeline's topics",
        description="create: make every topic of kafka.topics that is missing (idempotent); "
        "list: show each configured topic and its partition count on the cluster.",
    )
    parser.add_argument("action", choices=["create", "list"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    from stream.kafka.topics import create_topics, describe_topics

    if args.action == "create":
        for outcome in create_topics(config.kafka):
            what = "created" if outcome.created else "exists"
            print(f"{outcome.role:<15} {outcome.name:<30} {outcome.partitions:>3} partitions  {what}")
        return 0
    for topic in describe_topics(config.kafka):
        actual = "missing" if topic.actual_partitions is None else f"{topic.actual_partitions} partitions"
        print(f"{topic.role:<15} {topic.name:<30} configured {topic.configured_partitions:>3}  {actual}")
    return 0
