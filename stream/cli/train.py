"""``pepnet train``: the incremental trainer on the samples topic."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train PEPNet incrementally from the samples topic (passes, exports, checkpoints)",
        description="Consume the samples topic pass by pass; resume from the newest intact checkpoint.",
    )
    parser.add_argument("--max-passes", type=int, default=0, help="stop once this many passes exist (0 = never)")
    parser.add_argument(
        "--stop-at-end", action="store_true", help="train up to the end offsets seen at start, then stop"
    )
    parser.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many seconds without data")
    parser.add_argument("--run-dir", default=None, help="run directory (default: run_dir of the config)")
    parser.add_argument(
        "--init-from",
        metavar="MODEL_DIR",
        default=None,
        help="warm start: begin from this exported model (dense weights + table) when the run has no "
        "checkpoint yet; same as trainer.init_from (needed by model.preset paper-online)",
    )
    parser.add_argument(
        "--world-size", type=int, default=0,
        help="start N trainer processes on this machine (torch.distributed, gloo): each reads its own "
        "partitions and holds 1/N of the embedding table (default: one process, or what torchrun set)",
    )  # fmt: skip
    parser.add_argument(
        "--max-restarts", type=int, default=3,
        help="with --world-size: when a rank dies, restart all ranks from the last committed pass this often",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    """Run ``pepnet train`` (one process, or the launcher of N ranks, or one rank); returns the exit code."""
    import dataclasses
    import math
    import os
    import sys

    from stream.config.errors import UserError
    from stream.trainer.launcher import launch_local_ranks
    from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths
    from stream.trainer.rank_group import ENV_RANK, ENV_WORLD_SIZE, RankGroup, lost_another_rank
    from stream.trainer.stop_signals import stop_on_signals

    if args.max_passes < 0:
        raise UserError(f"--max-passes must be >= 0, got {args.max_passes}")
    if not (math.isfinite(args.idle_timeout) and args.idle_timeout >= 0):
        raise UserError(f"--idle-timeout must be >= 0 seconds (0 = never), got {args.idle_timeout}")
    if args.world_size < 0:
        raise UserError(f"--world-size must be >= 1 (0 = one process, or what torchrun set), got {args.world_size}")
    launched = ENV_RANK in os.environ and ENV_WORLD_SIZE in os.environ
    if args.world_size > 1 and not launched:
        return launch_local_ranks(args.world_size, args.argv, args.max_restarts)
    if args.init_from is not None:
        config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, init_from=args.init_from))
    group = RankGroup.from_environment()
    if args.world_size and group.world_size != args.world_size:
        raise UserError(f"--world-size {args.world_size} differs from {ENV_WORLD_SIZE}={group.world_size} (torchrun)")
    paths = TrainerPaths.from_config(config, args.run_dir)
    trainer = IncrementalTrainer(config, paths, group=group)
    try:
        with stop_on_signals(trainer.stop) as signals:
            summary = trainer.run(
                RunOptions(max_passes=args.max_passes, stop_at_end=args.stop_at_end, idle_timeout_s=args.idle_timeout)
            )
    except RuntimeError as error:
        if not (group.distributed and lost_another_rank(error)):
            raise
        reason = str(error).strip().splitlines()[0][-160:]
        print(
            f"error: trainer rank {group.rank} lost another rank ({reason}); the ranks resume together "
            "from the last committed pass when restarted",
            file=sys.stderr,
        )
        return 1
    finally:
        group.close()
    if group.is_root:
        trained = sum(r.samples for r in summary.passes)
        stopped = f"stopped by {signals[0]}; " if signals else ""
        ranks = f" by {group.world_size} ranks" if group.distributed else ""
        print(
            f"{stopped}trained {len(summary.passes)} passes ({trained} samples){ranks}; next pass "
            f"{summary.next_pass}; model in {paths.model_dir}, run log in {paths.run_dir / 'passes.jsonl'}"
        )
    return 0
