"""``pepnet serve``: an HTTP scoring service over a model directory that follows every new pass."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the newest exported pass over HTTP, applying each new pass's changed rows in place",
        description=(
            "POST /v1/score takes one impression (JSON object) or a batch (array) and answers the "
            "probability of every task and the pass used; /metrics for Prometheus."
        ),
    )
    parser.add_argument(
        "--model-dir", default=None, help="export directory (default: serving.model_dir or <run_dir>/model)"
    )
    parser.add_argument("--host", default=None, help="address to bind (default: serving.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: serving.port, 9402; 0 = any free)")
    parser.add_argument(
        "--wait", action="store_true", help="wait for the trainer's first export instead of failing without one"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet serve``; returns the exit code."""
    from pathlib import Path

    from stream.config.errors import UserError
    from stream.serving.server import serve
    from stream.trainer.loop import TrainerPaths

    settings = config.serving
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {port}")
    model_dir = args.model_dir or settings.model_dir or str(TrainerPaths.from_config(config).model_dir)
    serve(config, Path(model_dir), args.host or settings.host, port, wait=args.wait)
    return 0
