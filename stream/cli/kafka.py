"""``pepnet kafka up|down|status|fetch``: manage the local single-node Kafka broker."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.config.pipeline import PipelineConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kafka",
        help="start, stop or inspect the local Kafka broker",
        description="Manage the local single-node KRaft broker (kafka.local_broker). "
        "With kafka.bootstrap set, nothing is started or stopped: the external cluster is only checked.",
    )
    parser.add_argument(
        "action",
        choices=["up", "down", "status", "fetch"],
        help="up: start (or reuse) the broker; down: stop it; status: report it; "
        "fetch: download the broker jars with Maven without starting anything",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, config: PipelineConfig) -> int:
    from stream.kafka.broker import LocalBroker
    from stream.kafka.broker_jars import ensure_broker_jars

    kafka = config.kafka
    if args.action == "fetch":
        jars = ensure_broker_jars(kafka.local_broker.jars_dir, kafka.local_broker.maven)
        how = f"fetched in {jars.fetch_seconds:.1f} s" if jars.fetched else "already cached"
        print(f"kafka broker jars in {jars.directory} ({how})")
        return 0
    if not kafka.uses_local_broker:
        return _external(args.action, config)
    broker = LocalBroker(kafka.local_broker)
    if args.action == "up":
        started = time.monotonic()
        outcome = broker.up()
        state = outcome.state
        if outcome.reused:
            print(f"kafka broker already running at {state.bootstrap} (pid {state.pid}); reused it")
            return 0
        fetch = ""
        if outcome.jars is not None and outcome.jars.fetched:
            fetch = f"; jars fetched in {outcome.jars.fetch_seconds:.1f} s"
        print(
            f"kafka broker ready at {state.bootstrap} in {state.ready_seconds:.1f} s "
            f"(up took {time.monotonic() - started:.1f} s{fetch}; pid {state.pid}, "
            f"data {state.data_dir}, log {broker.log_path})"
        )
        return 0
    if args.action == "down":
        outcome = broker.down()
        if outcome.state is None:
            print(f"no kafka broker recorded in {broker.data_dir}; nothing to stop")
        elif outcome.stopped:
            print(f"kafka broker stopped (pid {outcome.state.pid}, {outcome.state.bootstrap})")
        else:
            print(f"kafka broker (pid {outcome.state.pid}) was not running; removed its record")
        return 0
    status = broker.status()
    if status.state is None:
        print(f"kafka broker: not running (nothing recorded in {broker.data_dir})")
        return 1
    if not status.running:
        print(f"kafka broker: not running (recorded pid {status.state.pid} is gone)")
        return 1
    answer = "answering" if status.answering else "NOT answering"
    print(
        f"kafka broker: running at {status.state.bootstrap}, {answer} "
        f"(pid {status.state.pid}, data {status.state.data_dir}, log {broker.log_path})"
    )
    return 0 if status.answering else 1


def _external(action: str, config: PipelineConfig) -> int:
    """kafka.bootstrap names an existing cluster: never start or stop anything, only check it."""
    from stream.kafka.clients import check_reachable

    bootstrap = config.kafka.bootstrap_servers
    if action == "down":
        print(f"kafka.bootstrap is {bootstrap}: an external cluster, nothing to stop")
        return 0
    brokers = check_reachable(config.kafka)
    verb = "nothing to start; " if action == "up" else ""
    print(f"kafka.bootstrap is {bootstrap}: an external cluster, {verb}{brokers} broker(s) answering")
    return 0
