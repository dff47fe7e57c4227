"""`pepnet worker --processes N`: N consume loops of one consumer group, started by one command.

One Python process joins at most one core's worth of events, so the parent starts N child
processes (multiprocessing, *spawn*: no librdkafka thread is ever forked), each running the
kafka engine's :class:`~stream.joiner.consumer_loop.JoinerConsumeLoop` in group ``joiner.app_id``.
The group spreads the partitions over them exactly as over N separate workers, so everything
about state, delivery and rebalances holds as documented for several workers. The children join
the group together (a barrier once each has built its clients): a child that came up alone would
take every partition, start joining, and hand state over at each later arrival.

Metrics: the parent serves **one endpoint** (``monitoring.worker_port``) with the sum over its
children, the way Prometheus users scrape one target per deployed command (prometheus_client's
multiprocess mode: children write their values to files in a private directory, the parent
reads them at each scrape). Counters add up, ``pepnet_joiner_pending_impressions`` and
``pepnet_joiner_assigned_partitions`` are the sum over live children, ``pepnet_consumer_lag_messages``
is the latest value reported for each partition. ``process_*`` metrics describe the parent only.

Shutdown: SIGTERM or SIGINT to the parent is passed to every child as SIGTERM; each finishes its
batch, commits and leaves the group. If a child exits on its own (a refused output message, a
crash), the parent stops the others and exits with that child's code, so that a supervisor
restarts the whole command.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from functools import partial
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from threading import BrokenBarrierError
from types import FrameType

from stream.config.pipeline import PipelineConfig

_log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when first imported
STOP_GRACE_S = 60.0  # seconds a child may take to finish its batch, commit and leave the group
START_TOGETHER_S = 120.0  # seconds a child waits for its siblings before it joins the group alone


def run_process_group(config: PipelineConfig, processes: int, log_level: str) -> int:
    """Run ``processes`` kafka-engine consume loops and block until stopped; returns the exit code."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from monitoring.server import start_metrics_server
    from stream.config.errors import UserError

    metrics_dir = tempfile.mkdtemp(prefix="pepnet-worker-metrics-")
    server = None
    children: list[BaseProcess] = []
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(processes)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            _log.info("%s: stopping %d processes", signal.Signals(signum).name, len(children))
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if config.monitoring.enabled:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)
            try:
                server = start_metrics_server(registry, config.monitoring.host, config.monitoring.worker_port)
            except OSError as e:
                raise UserError(f"{e.strerror}; set monitoring.worker_port (0 = any free port)") from None
            print(f"metrics: {server.url}", flush=True)  # one endpoint: the sum over the processes
        os.environ[MULTIPROCESS_ENV] = metrics_dir  # inherited by the spawned children
        try:
            for index in range(processes):
                child = context.Process(
                    target=run_child,
                    args=(config, index, log_level, start_together),
                    name=f"pepnet-worker-{index}",
                    daemon=False,
                )
                child.start()
                children.append(child)
        finally:
            del os.environ[MULTIPROCESS_ENV]
        _log.info("started %d consume-loop processes: %s", processes, [c.pid for c in children])
        exit_code = 0
        while not stopping:
            ended = wait([c.sentinel for c in children], timeout=0.5)
            if ended:
                child = next(c for c in children if c.sentinel in ended)
                child.join()
                exit_code = child.exitcode if child.exitcode else 1
                _log.error(
                    "process %s exited with code %s; stopping the others (restart the command)",
                    child.name, child.exitcode,
                )  # fmt: skip
                break
        return exit_code
    finally:
        start_together.abort()  # children still waiting for a sibling that is gone stop waiting
        _stop_children(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop_children(children: list[BaseProcess]) -> None:
    """SIGTERM every live child, wait for them to leave the group, kill what is left."""
    for child in children:
        if child.is_alive():
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            _log.warning("process %s did not stop within %.0f s: killed", child.name, STOP_GRACE_S)
            child.kill()
            child.join(5)


def run_child(config: PipelineConfig, index: int, log_level: str, start_together: Barrier) -> None:
    """One child: a kafka-engine consume loop whose metrics go to the parent's endpoint; it joins
    the group once every sibling is ready to (``start_together``)."""
    from prometheus_client import CollectorRegistry

    from monitoring.joiner_metrics import JoinerMetrics
    from stream.events.validation import REASONS
    from stream.joiner.worker import run_consume_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which sends SIGTERM
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s %(name)s[{index}]: %(message)s", force=True)
    metrics = JoinerMetrics(CollectorRegistry(), REASONS)  # values land in the multiprocess directory
    raise SystemExit(run_consume_loop(config, metrics, ready=partial(_wait_for_siblings, start_together)))


def _wait_for_siblings(start_together: Barrier) -> None:
    try:
        start_together.wait(START_TOGETHER_S)
    except BrokenBarrierError:  # a sibling failed to start, or the command is stopping
        _log.warning("not every process was ready within %.0f s (or the command is stopping)", START_TOGETHER_S)
