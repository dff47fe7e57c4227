"""``pepnet score``: load an exported model directory and score impressions from a file or a topic."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "score",
        help="score impressions with an exported model (LATEST: dense weights + table snapshot/deltas)",
        description="Prints one JSON line per impression: impression_id and a probability per task.",
    )
    parser.add_argument("--model-dir", default=None, help="export directory (default: <run_dir>/model)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="JSONL", help="impressions or labelled samples, one JSON per line")
    source.add_argument("--topic", help="read this topic from its beginning to its current end")
    parser.add_argument("--limit", type=int, default=0, help="score at most this many (0 = all)")
    parser.add_argument("--out", default=None, help="write the scores here instead of standard output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet score``; returns the exit code."""
    import itertools
    import math
    import sys
    from pathlib import Path

    from stream.config.errors import UserError
    from stream.scoring.exported_model import ExportedModel, labelled_auc, write_scores
    from stream.scoring.inputs import read_jsonl, read_topic
    from stream.trainer.loop import TrainerPaths

    if args.limit < 0:
        raise UserError(f"--limit must be >= 0, got {args.limit}")
    model_dir = Path(args.model_dir) if args.model_dir else TrainerPaths.from_config(config).model_dir
    model = ExportedModel.load(model_dir)
    if args.input:
        events = read_jsonl(args.input, model.model.schema)
        events = itertools.islice(events, args.limit) if args.limit else events
    else:
        events = read_topic(config.kafka, args.topic, model.model.schema, args.limit)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115 - closed below
    try:
        scored = write_scores(model, events, out)
    finally:
        if args.out:
            out.close()
    summary = f"scored {len(scored)} impressions with {model_dir} (pass {model.pass_index})"
    aucs = {t: v for t, v in labelled_auc(scored, model.model.schema.task_names).items() if not math.isnan(v)}
    if aucs:
        summary += "; AUC on their labels: " + ", ".join(f"{t} {v:.4f}" for t, v in aucs.items())
    print(summary, file=sys.stderr)
    return 0
