"""``pepnet simulate``: publish simulated impressions and actions (or pre-labelled impressions) to Kafka."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from stream.config.errors import UserError

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="publish a simulated stream of impressions and actions to Kafka",
        description=(
            "Draws impressions and actions from the seeded simulator (simulator.*) over the real "
            "KuaiRand-Pure population and produces them to kafka.topics.impressions / actions, keyed by "
            "user id. Stops after --impressions or --duration, whichever comes first; with --rate alone it "
            "runs until stopped (the docker-compose simulator service)."
        ),
    )
    parser.add_argument("--impressions", type=int, default=None, metavar="N", help="impressions to publish")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="wall-clock seconds to run")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="EVENTS_PER_S",
        help="wall-clock rate (default: as fast as possible)",
    )
    parser.add_argument("--seed", type=int, default=None, help="override simulator.seed")
    parser.add_argument(
        "--labelled",
        action="store_true",
        help="publish pre-labelled impressions (labels of a joiner.window_ms join) instead of impressions+actions",
    )
    parser.add_argument(
        "--oracle",
        metavar="PATH",
        default=None,
        help="also write labels and oracle probabilities of the same impressions (JSON lines; needs --impressions)",
    )
    parser.add_argument(
        "--samples-file",
        metavar="PATH",
        default=None,
        help="instead of publishing, write the labelled samples (samples format + oracle probabilities, "
        "JSON lines) for `pepnet evaluate --input` (needs --impressions; no Kafka)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    import dataclasses

    from tqdm import tqdm

    from stream.simulator.generator import EventSimulator
    from stream.simulator.publisher import PublishOptions, publish_simulation

    if args.impressions is None and args.duration is None and args.rate is None:
        raise UserError("give --impressions N, --duration S or --rate EVENTS_PER_S (then it runs until stopped)")
    if args.oracle and args.impressions is None:
        raise UserError("--oracle needs --impressions (the oracle file covers a fixed number of impressions)")
    if args.samples_file and (args.impressions is None or args.duration is not None or args.rate is not None):
        raise UserError("--samples-file writes a fixed number of samples: give --impressions N (no --duration/--rate)")
    try:
        options = PublishOptions(
            impressions=args.impressions,
            duration_s=args.duration,
            rate=args.rate,
            labelled=args.labelled,
            window_ms=config.joiner.window_ms,
        )
        sim_config = config.simulator
        if args.seed is not None:
            sim_config = dataclasses.replace(sim_config, seed=args.seed)
        simulator = EventSimulator(sim_config, config.schema)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.samples_file:
        written = simulator.write_samples(args.samples_file, args.impressions, config.joiner.window_ms)
        print(f"wrote {written} labelled samples with oracle probabilities to {args.samples_file}")
        if args.oracle:
            simulator.write_oracle(args.oracle, args.impressions, config.joiner.window_ms)
        return 0
    kafka = config.kafka
    rate = f"{args.rate:g} events/s" if args.rate else "as fast as possible"
    until = []
    if args.impressions is not None:
        until.append(f"{args.impressions} impressions")
    if args.duration is not None:
        until.append(f"{args.duration:g} s")
    what = "pre-labelled impressions" if args.labelled else "impressions and actions"
    topics = kafka.topics.impressions.name + ("" if args.labelled else f" and {kafka.topics.actions.name}")
    print(
        f"simulator: publishing {what} to {topics} at {kafka.bootstrap_servers}, {rate}, "
        f"until {' or '.join(until) or 'stopped'} (no metrics endpoint)",
        flush=True,
    )
    with tqdm(total=args.impressions, unit="imp", disable=args.no_progress, mininterval=0.5) as bar:
        report = publish_simulation(simulator, config.kafka, options, progress=bar)
    print(report.summary())
    if args.oracle:
        written = simulator.write_oracle(args.oracle, args.impressions, config.joiner.window_ms)
        print(f"wrote labels and oracle probabilities of {written} impressions to {args.oracle}")
    return 1 if report.failed else 0
