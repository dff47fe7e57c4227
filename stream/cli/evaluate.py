"""``pepnet evaluate``: offline progressive validation of several models on the simulator, a file or a topic."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pepnet.config import ARCHITECTURES
from stream.cli.replay import add_range_arguments, range_from_args
from stream.config.errors import UserError

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig

if TYPE_CHECKING:
    from stream.evaluation.sources import BatchSource

DEFAULT_MODELS = "pepnet,shared_bottom,mmoe,epnet_only,ppnet_only"
DEFAULT_EVENTS = 200_000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="progressive AUC/GAUC of several models (and the oracle, when known) on simulated or your own samples",
        description="Scores every batch with every model before training on it; writes OUT/evaluation.csv, "
        "evaluation.json and evaluation.md and prints the table. The samples come from the simulator "
        "(--events, the default), a JSON-lines file in the samples format (--input) or a samples topic "
        "(--topic, bounded by --from/--to offsets or times; default: everything in it now).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", type=int, default=None, help=f"simulated impressions (default {DEFAULT_EVENTS})")
    source.add_argument("--input", metavar="JSONL", default=None, help="labelled samples, one JSON object per line")
    source.add_argument("--topic", default=None, help="a topic of labelled samples (JSON, the samples format)")
    add_range_arguments(parser)
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated (default {DEFAULT_MODELS})")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/evaluation)")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per batch (default trainer.batch_size)")
    parser.add_argument(
        "--predictions", metavar="JSONL", default=None, help="also write every sample's predictions by every model"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    import contextlib

    from tqdm import tqdm

    from stream.evaluation.progressive import run_evaluation
    from stream.evaluation.report import PredictionWriter, format_markdown, write_results

    batch_size = config.trainer.batch_size if args.batch_size is None else args.batch_size
    if batch_size <= 0:
        raise UserError(f"--batch-size must be > 0, got {batch_size}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ARCHITECTURES]
    if unknown or not models:
        raise UserError(f"--models: unknown {unknown or 'empty list'}; choose from {', '.join(ARCHITECTURES)}")
    if config.model.preset == "paper-online":
        raise UserError(
            "pepnet evaluate trains every model from random weights, and model.preset paper-online (Adam lr 5e-6) "
            "is for continuing a trained one (pepnet train --init-from); use cold-start, or set model.dense_lr"
        )
    source = _source(args, config)
    out_dir = args.out or f"{config.run_dir}/evaluation"
    with contextlib.ExitStack() as stack:
        on_batch = None
        if args.predictions:
            out = stack.enter_context(open(args.predictions, "w", encoding="utf-8"))
            on_batch = PredictionWriter(out, config.schema.task_names, config.schema.domains)
        bar = stack.enter_context(tqdm(total=source.expected_samples, unit="sample", mininterval=5.0))
        try:
            result = run_evaluation(config, models, source, batch_size, progress=bar.update, on_batch=on_batch)
        except ValueError as error:  # the simulator refusing the schema, an empty source
            raise UserError(str(error)) from None
    paths = write_results(result, out_dir)
    print(format_markdown(result))
    for path in paths:
        print(path)
    if args.predictions:
        print(args.predictions)
    return 0


def _source(args: argparse.Namespace, config: PipelineConfig) -> BatchSource:
    from stream.evaluation.sources import JsonLinesSource, SimulatedSource

    ranged = any(v is not None for v in (args.from_time, args.to_time, args.from_offsets, args.to_offsets))
    if ranged and not args.topic:
        raise UserError("--from-time/--to-time/--from-offsets/--to-offsets bound a --topic; give --topic NAME")
    if args.input:
        return JsonLinesSource(args.input, config.schema)
    if args.topic:
        from stream.evaluation.topic_source import TopicSource

        return TopicSource(config.kafka, args.topic, config.schema, range_from_args(args))
    events = DEFAULT_EVENTS if args.events is None else args.events
    if events <= 0:
        raise UserError(f"--events must be > 0, got {events}")
    return SimulatedSource(config, events)
