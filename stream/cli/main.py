"""The ``pepnet`` command: one subcommand per module listed in ``COMMAND_MODULES``.

Each module ``stream/cli/<name>.py`` defines ``add_parser(subparsers)``; its parser sets
``handler=run`` where ``run(args, config) -> int``. Heavy imports (torch, faust) stay inside
``run`` so that ``pepnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stream.config.errors import UserError

COMMAND_MODULES: list[str] = [
    "kafka",
    "topics",
    "simulate",
    "worker",
    "train",
    "evaluate",
    "report",
    "replay",
    "score",
    "serve",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pepnet",
        description="Online training of PEPNet recommendation models from Kafka streams.",
    )
    _add_common_options(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"stream.cli.{name}").add_parser(subparsers)
    for sub in subparsers.choices.values():
        _add_common_options(sub, defaults=False)
    return parser


def _add_common_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--config and --log-level, accepted before and after the subcommand.

    Only the top-level parser sets defaults: a subparser default would overwrite a value given
    before the subcommand (``pepnet --config x.yaml kafka status``).
    """
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=None if defaults else argparse.SUPPRESS,
        help="YAML file of the keys to change, merged over the defaults (stream/config/default.yaml)",
    )
    group.add_argument(
        "--log-level",
        default="INFO" if defaults else argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pepnet`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for commands that start copies of themselves
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        from stream.config.pipeline import load_config

        config = load_config(args.config)
        return int(args.handler(args, config) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
