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


@pytest.mark.parametrize(
    "argv, yaml_text, message",
    [
        (["worker", "--app-id", ""], "", "error: joiner.app_id: must not be empty"),
        (["--config", "{tmp}", "train"], None, "error: config file {tmp}: cannot read it (Is a directory)"),
        (
            ["train"],
            "embedding_store:\n  budget_bytes: 100000000000000\nrun_dir: {tmp}/run\n",
            "error: embedding_store.budget_bytes = 100000000000000 (93132.3 GiB) is more than this machine's memory",
        ),
        (["train"], "kafka:\n  client:\n    no.such.property: 1\nrun_dir: {tmp}/run\n", "error: kafka.client: "),
        (["train"], "run_dir: /dev/null/run\n", "error: run_dir /dev/null/run: cannot create it (Not a directory)"),
        (["train", "--idle-timeout", "-5"], "", "error: --idle-timeout must be >= 0 seconds"),
    ],
)
def test_a_bad_argument_exits_2_with_one_line(tmp_path, capsys, argv, yaml_text, message):
    """Issue 12 case 8: each of these printed a traceback (or, --idle-timeout -5, was accepted)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if yaml_text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml_text.replace("{tmp}", str(tmp_path)))
        argv = ["--config", str(path), *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.replace("{tmp}", str(tmp_path))), err
    assert err.count("\n") == 1, err
