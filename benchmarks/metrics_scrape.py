"""How long the trainer's metrics endpoint takes to answer while it trains, beside the same
endpoint while the trainer waits for data (the baseline), measured in the same run.

    python -m benchmarks.metrics_scrape                    # 40,000 samples, passes of 5,000
    python -m benchmarks.metrics_scrape --samples 100000

`pepnet train` runs as a process on a broker of its own (free ports); the scraper GETs /metrics
every 0.25 s, first for --idle seconds before any sample exists, then while every sample is
trained. A scrape slower than Prometheus' scrape_timeout makes `up` 0: the figures size that
timeout (deploy/prometheus/prometheus.yml sets 10 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from stream.config.pipeline import load_config
from stream.kafka.broker import LocalBroker
from stream.kafka.config import LocalBrokerConfig
from stream.kafka.topics import create_topics
from stream.simulator.generator import EventSimulator
from stream.trainer.sample_producer import produce_samples
from tests.conftest import free_ports

METRICS_URL_PREFIX = "metrics at http://"


def scrape_until(url: str, stop, interval_s: float = 0.25) -> list[float]:  # noqa: ANN001 - a predicate
    """Seconds per GET of ``url`` until ``stop()``; a failed GET counts as infinity."""
    times = []
    while not stop():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
            times.append(time.perf_counter() - started)
        except OSError:
            times.append(float("inf"))
        time.sleep(interval_s)
    return times


def summary(label: str, times: list[float]) -> str:
    finite = sorted(t for t in times if t != float("inf"))
    failed = len(times) - len(finite)
    p95 = finite[int(0.95 * (len(finite) - 1))] if finite else float("nan")
    return (f"{label:<22} {len(times):>5} scrapes  median {statistics.median(finite) * 1000:7.1f} ms  "
            f"p95 {p95 * 1000:7.1f} ms  max {finite[-1] * 1000:7.1f} ms  > 1 s: {sum(t > 1 for t in finite)}  "
            f"failed: {failed}")  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a `timeout` or `kill` still stops the trainer and the broker (finally)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--pass-samples", type=int, default=5_000)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds scraped before any sample exists")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    port, controller, metrics_port = free_ports(3)
    broker = LocalBroker(LocalBrokerConfig(port=port, controller_port=controller, data_dir=str(work / "kafka")))
    bootstrap = broker.up().state.bootstrap
    trainer = None
    try:
        overrides = {
            "kafka": {"bootstrap": bootstrap, "topics": {"samples": {"name": "bench.samples",
                                                                     "settings": {"retention.ms": "-1"}}}},
            "trainer": {"pass_samples": args.pass_samples},
            "monitoring": {"trainer_port": metrics_port},
        }  # fmt: skip
        config_path = work / "config.yaml"
        config_path.write_text(yaml.safe_dump(overrides))
        config = load_config(config_path, environ={})
        create_topics(config.kafka)
        simulator = EventSimulator(config.simulator, config.schema)
        samples = [s for s, _ in simulator.labelled_samples(args.samples, config.joiner.window_ms)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
        log = work / "train.log"
        # The last pass may lack a share of some partition (a pass takes each partition's share).
        passes = max(1, args.samples // args.pass_samples - 1)
        trainer = subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "train", "--config", str(config_path), "--run-dir",
             str(work / "run"), "--max-passes", str(passes)],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        while METRICS_URL_PREFIX not in log.read_text():
            if trainer.poll() is not None:
                raise SystemExit(f"the trainer exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        idle_until = time.monotonic() + args.idle
        idle = scrape_until(url, lambda: time.monotonic() > idle_until)
        produce_samples(config.kafka, config.kafka.topics.samples.name, samples)
        # Until the trainer closes its last pass and stops serving metrics.
        busy = scrape_until(url, lambda: trainer.poll() is not None or "trained " in log.read_text())
        busy = busy[:-2]  # the last scrapes race the endpoint's shutdown
        print(f"{args.samples:,} samples, passes of {args.pass_samples:,}; load average {os.getloadavg()[0]:.1f}")
        print(summary("idle (baseline)", idle))
        print(summary("training", busy))
        print(f"median ratio training / idle: {statistics.median(busy) / statistics.median(idle):.1f}x")
    finally:
        if trainer is not None and trainer.poll() is None:
            trainer.terminate()
            trainer.wait(timeout=60)
        broker.down()


if __name__ == "__main__":
    main()
