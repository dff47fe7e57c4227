"""``pepnet simulate`` argument handling that needs no broker (the publishing itself: test_publisher.py)."""

from __future__ import annotations

import argparse
import json

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
        ((), "give --impressions N, --duration S or --rate EVENTS_PER_S"),
        (("--duration", "5", "--oracle", "x.jsonl"), "--oracle needs --impressions"),
        (("--impressions", "-3"), "^impressions must be >= 0"),
        (("--impressions", "10", "--rate", "0"), "^rate must be > 0"),
        (("--impressions", "10", "--seed", "-1"), "^seed must be >= 0, got -1"),
        (("--duration", "5", "--samples-file", "x.jsonl"), "--samples-file writes a fixed number of samples"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        run_cli(*argv)


def test_publish_options_validate_their_fields():
    with pytest.raises(ValueError, match="^duration_s must be > 0"):
        PublishOptions(duration_s=0)
    assert PublishOptions(impressions=0).rate is None
    assert PublishOptions(rate=200).impressions is None  # paced: runs until stopped
    with pytest.raises(ValueError, match="^impressions, duration_s or rate must be given"):
        PublishOptions()


def test_samples_file_writes_labelled_samples_with_oracle_probabilities_without_kafka(tmp_path, capsys):
    path = tmp_path / "samples.jsonl"
    assert run_cli("--impressions", "40", "--samples-file", str(path)) == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 40 and "wrote 40 labelled samples" in capsys.readouterr().out
    assert lines[0].keys() == {"sample_id", "impression", "labels", "join", "oracle"}
    assert lines[0]["oracle"].keys() == lines[0]["labels"].keys()
