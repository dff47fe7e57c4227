"""``pepnet simulate`` argument handling that needs no broker (the publishing itself: test_publisher.py)."""

from __future__ import annotations

import argparse

import pytest

from stream.cli import simulate as simulate_cli
from stream.config.errors import UserError
from stream.config.pipeline import load_config
from stream.simulator.publisher import PublishOptions


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    simulate_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    return args.handler(args, load_config(environ={}))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give --impressions N or --duration S"),
        (("--duration", "5", "--oracle", "x.jsonl"), "--oracle needs --impressions"),
        (("--impressions", "-3"), "^impressions must be >= 0"),
        (("--impressions", "10", "--rate", "0"), "^rate must be > 0"),
        (("--impressions", "10", "--seed", "-1"), "^seed must be >= 0, got -1"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        run_cli(*argv)


def test_publish_options_validate_their_fields():
    with pytest.raises(ValueError, match="^duration_s must be > 0"):
        PublishOptions(duration_s=0)
    assert PublishOptions(impressions=0).rate is None
