"""`pepnet worker --processes N` against the real broker: N consume loops in one group join
exactly, one metrics endpoint sums them, and SIGTERM/SIGINT to the parent stop everything cleanly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from stream.config.pipeline import PipelineConfig
from stream.joiner.event_log import EventLogWriter
from tests.stream.joiner.test_worker_kafka import WorkerProcess, by_id, ground_truth, read_samples, write_worker_config

pytestmark = pytest.mark.kafka


def consume_loops(worker: WorkerProcess) -> list[psutil.Process]:
    """The worker's spawned consume-loop processes (not multiprocessing's resource tracker)."""
    children = psutil.Process(worker.process.pid).children(recursive=True)
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_processes_share_the_partitions_and_stop_cleanly(
    pipeline_config: PipelineConfig, tmp_path: Path, stop_signal: int
) -> None:
    n = 3000
    simulator, truth = ground_truth(pipeline_config, n)
    worker = WorkerProcess(write_worker_config(pipeline_config, tmp_path, "processes"), "--processes", "2")
    try:
        deadline = time.monotonic() + 120
        while worker.metric("pepnet_joiner_assigned_partitions") < pipeline_config.kafka.topics.impressions.partitions:
            assert worker.process.poll() is None and time.monotonic() < deadline, "partitions not all assigned"
            time.sleep(0.2)
        children = consume_loops(worker)
        assert len(children) == 2
        writer = EventLogWriter(pipeline_config.kafka)
        events = writer.send_events(simulator.events(n))
        writer.flush()
        samples = read_samples(pipeline_config, "samples", n)
        worker.wait_consumed(events)  # the endpoint sums both processes' counters
        assert worker.metric("pepnet_joiner_impressions_consumed_total") == n
        assert worker.metric("pepnet_joiner_assigned_partitions") == pipeline_config.kafka.topics.impressions.partitions
    finally:
        worker.stop(stop_signal)
    assert worker.process.returncode == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive  # the parent waited for its children (they left the group and exited)
    assert by_id(samples) == truth
    log = worker.log.read_text()
    assert "Traceback" not in log


def test_processes_need_the_kafka_engine(kafka_broker: str, pipeline_config: PipelineConfig, tmp_path: Path,
                                         pepnet_cli) -> None:  # fmt: skip
    config = write_worker_config(pipeline_config, tmp_path, "faust-processes", engine="faust")
    result = pepnet_cli("worker", "--config", str(config), "--processes", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --processes N needs the kafka engine")
