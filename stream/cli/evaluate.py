"""``pepnet evaluate``: offline progressive validation of several models on a simulated stream."""

from __future__ import annotations

import argparse

from pepnet.config import ARCHITECTURES
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig

DEFAULT_MODELS = "pepnet,shared_bottom,mmoe,epnet_only,ppnet_only"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="progressive AUC/GAUC of several models and the oracle on a simulated stream (no Kafka)",
        description="Scores every batch with every model before training on it; writes "
        "OUT/evaluation.csv, evaluation.json and evaluation.md and prints the table.",
    )
    parser.add_argument("--events", type=int, default=200_000, help="simulated impressions (default 200000)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated (default {DEFAULT_MODELS})")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/evaluation)")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per batch (default trainer.batch_size)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    import torch  # heavy; keep --help fast
    from tqdm import tqdm

    from stream.evaluation.progressive import format_markdown, run_evaluation, write_results

    if args.events <= 0:
        raise UserError(f"--events must be > 0, got {args.events}")
    batch_size = config.trainer.batch_size if args.batch_size is None else args.batch_size
    if batch_size <= 0:
        raise UserError(f"--batch-size must be > 0, got {batch_size}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ARCHITECTURES]
    if unknown or not models:
        raise UserError(f"--models: unknown {unknown or 'empty list'}; choose from {', '.join(ARCHITECTURES)}")
    if config.model.num_threads:
        torch.set_num_threads(config.model.num_threads)
    with tqdm(total=args.events, unit="ev", mininterval=5.0) as bar:
        result = run_evaluation(config, models, args.events, batch_size, progress=bar.update)
    paths = write_results(result, args.out or f"{config.run_dir}/evaluation")
    print(format_markdown(result))
    for path in paths:
        print(path)
    return 0
