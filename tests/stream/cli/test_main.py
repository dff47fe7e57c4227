"""The ``pepnet`` dispatcher: common options on both sides of the subcommand, one-line config errors."""

import pytest

from stream.cli.main import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "x.yaml", "--log-level", "DEBUG", "kafka", "status"],
        ["kafka", "status", "--config", "x.yaml", "--log-level", "DEBUG"],
    ],
)
def test_common_options_are_accepted_before_and_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert (args.config, args.log_level, args.action) == ("x.yaml", "DEBUG", "status")


def test_common_options_default_when_not_given():
    args = build_parser().parse_args(["kafka", "status"])
    assert (args.config, args.log_level) == (None, "INFO")


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("kafka:\n  bootstrapp: x\n", "error: kafka.bootstrapp: unknown key; known keys here are bootstrap,"),
        (
            "kafka:\n  topics:\n    impressions: {partitions: -3}\n",
            "error: kafka.topics.impressions.partitions: must be > 0, got -3",
        ),
        ("kafka:\n  connect_timeout_s: abc\n", "error: kafka.connect_timeout_s = 'abc': expected a number"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_naming_the_key(tmp_path, capsys, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    assert main(["--config", str(path), "kafka", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1, err
