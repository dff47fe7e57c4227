"""Events/s through one joiner worker (`pepnet worker`) against the raw confluent-kafka consume rate
of the same input topics (the ceiling), measured in the same run, and the ratio (target >= 30%).

Also the acceptance check at scale: every simulated impression yields exactly one sample whose
labels equal the simulator's ground truth (``EventSimulator.labelled_samples``).

    python benchmarks/joiner.py                          # local broker on free ports, 200k impressions
    python benchmarks/joiner.py --impressions 20000 --bootstrap 127.0.0.1:19092

The worker's rate is its consumption rate: valid events counted by its metrics endpoint between
the first event read and the last (start-up, rebalance and the idle close are excluded). CPU
seconds of both sides are printed too: the machine is shared, so events per CPU second is the
figure that does not depend on the load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

# benchmarks/embedding_store.py shadows the package of that name: import from the repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO_ROOT)] + [e for e in sys.path if Path(e or ".").resolve() != REPO_ROOT / "benchmarks"]

import psutil  # noqa: E402
import yaml  # noqa: E402
from confluent_kafka import TopicPartition  # noqa: E402

from stream.config.pipeline import load_config  # noqa: E402
from stream.events.formats import decode_sample  # noqa: E402
from stream.joiner.event_log import EventLogWriter, read_topic  # noqa: E402
from stream.kafka.clients import new_consumer  # noqa: E402
from stream.kafka.config import TopicsConfig  # noqa: E402
from stream.kafka.topics import create_topics  # noqa: E402
from stream.simulator import EventSimulator  # noqa: E402

_CONSUMED = re.compile(r"^pepnet_joiner_(impressions|actions)_consumed_total ([0-9.e+]+)$", re.M)


def raw_consume_rate(config, topics: list[str], partitions: int, total: int) -> tuple[float, float, int]:
    """Read every message of ``topics`` with ``consume(1000)``: (events/s, CPU s, messages)."""
    consumer = new_consumer(config.kafka, f"bench-raw-{uuid.uuid4().hex[:8]}", name="raw consume")
    consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(partitions)])
    count, started, cpu0 = 0, None, time.process_time()
    first_cpu = cpu0
    while count < total:
        batch = consumer.consume(1000, 1.0)
        if batch and started is None:
            started, first_cpu = time.perf_counter(), time.process_time()
        count += len(batch)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - first_cpu
    consumer.close()
    return count / seconds, cpu, count


def faust_floor(bootstrap: str, topics: list[str], partitions: int, total: int, work: Path) -> None:
    """Child process: a faust agent that does nothing with the events; prints rate and CPU rate.

    The per-event cost of faust-streaming itself (aiokafka fetch, conductor, stream, acks): the
    real floor under any faust worker, printed beside the raw consume rate.
    """
    import faust

    app = faust.App(
        f"bench-floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
        datadir=str(work / "floor"), web_enabled=False, topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
    )  # fmt: skip
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    process = psutil.Process()
    progress = {"count": 0}

    async def drain(stream: faust.StreamT) -> None:
        async for events in stream.take_events(1000, 0.3):
            if "start" not in progress:
                progress["start"] = (time.perf_counter(), sum(process.cpu_times()[:2]), len(events))
            progress["count"] += len(events)
            if progress["count"] >= total:
                start, cpu, first = progress["start"]
                counted = progress["count"] - first
                rate = counted / (time.perf_counter() - start)
                print(f"FLOOR {rate:.0f} {counted / (sum(process.cpu_times()[:2]) - cpu):.0f}", flush=True)
                os._exit(0)

    app.agent(source, name="drain")(drain)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def worker_consumed(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(v) for _, v in _CONSUMED.findall(text))


def measure_worker(
    config_path: Path,
    engine: str,
    role: str,
    events: int,
    env: dict[str, str],
    workers: list[subprocess.Popen],
    count: int = 1,
) -> tuple[float, float]:
    """Run ``count`` `pepnet worker --engine <engine>` (one group) until together they read ``events``.

    Returns (events/s, events per CPU s) between the first and the last counted event; the
    workers are left running (in ``workers``) until their samples are read back.
    """
    command = [
        sys.executable, "-m", "stream.cli.main", "worker", "--config", str(config_path), "--log-level", "WARNING",
        "--engine", engine, "--app-id", f"{config_path.parent.name}-{engine}-{count}", "--output", role,
    ]  # fmt: skip
    started = []
    for _ in range(count):
        worker = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        workers.append(worker)
        started.append(worker)
    urls = []
    for worker in started:
        while True:
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(f"{engine} worker exited before printing its metrics URL")
            if line.startswith("metrics: "):
                urls.append(line.split(" ", 1)[1].strip())
                break
    processes = [psutil.Process(worker.pid) for worker in started]

    def cpu() -> float:
        return sum(sum(process.cpu_times()[:2]) for process in processes)

    first = None
    while True:
        consumed = sum(worker_consumed(url) for url in urls)
        now = time.perf_counter()
        if consumed > 0 and first is None:
            first, first_cpu = (now, consumed), cpu()
        if consumed >= events:
            last_cpu = cpu()
            break
        if any(worker.poll() is not None for worker in started):
            raise RuntimeError(f"a {engine} worker exited early")
        time.sleep(0.1)
    counted = consumed - first[1]
    return counted / (now - first[0]), counted / (last_cpu - first_cpu)


def check_samples(config, simulator: EventSimulator, topic: str, impressions: int) -> int:
    """Compare the samples in ``topic`` with the simulator's ground truth; returns 1 on a mismatch."""
    partitions = config.kafka.topics.samples.partitions
    samples = read_topic(config.kafka, topic, partitions, expected=impressions, timeout_s=300, settle_s=3)
    got: dict[str, dict[str, int]] = {}
    duplicates = 0
    for message in samples:
        sample = decode_sample(message.value)
        duplicates += sample.sample_id in got
        got[sample.sample_id] = sample.labels
    truth = {s.sample_id: s.labels for s, _ in simulator.labelled_samples(impressions, config.joiner.window_ms)}
    missing = len(truth.keys() - got.keys())
    wrong = sum(1 for k, v in truth.items() if k in got and got[k] != v)
    print(f"  {topic}: samples {len(got):,} of {len(truth):,}: missing {missing}, duplicates {duplicates}, "
          f"labels differing from ground truth {wrong}")  # fmt: skip
    return 0 if missing == 0 and wrong == 0 and duplicates == 0 else 1


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--bootstrap", default="", help="existing broker (default: start a local one)")
    parser.add_argument("--workers", type=int, default=0, help="also measure N kafka-engine workers in one group")
    parser.add_argument("--floor", nargs=4, metavar=("BOOTSTRAP", "TOPICS", "EVENTS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:  # child process of the measurement below
        bootstrap, topics, events, work = args.floor
        faust_floor(bootstrap, topics.split(","), 4, int(events), Path(work))
        return 0

    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from stream.kafka.broker import LocalBroker
        from stream.kafka.config import LocalBrokerConfig
        from tests.conftest import free_ports

        port, controller = free_ports(2)
        data_dir = tempfile.mkdtemp(prefix="bench-joiner-")
        broker = LocalBroker(LocalBrokerConfig(port=port, controller_port=controller, data_dir=data_dir))
        bootstrap = broker.up().state.bootstrap
    workers: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="bench-joiner-work-"))
    try:
        prefix = f"bench.{uuid.uuid4().hex[:8]}"
        topics = {role: {"name": f"{prefix}.{role}"} for role in TopicsConfig().by_role()}
        overrides = {
            "kafka": {"bootstrap": bootstrap, "topics": topics},
            "joiner": {"app_id": prefix, "faust": {"data_dir": str(work / "faust")}},
            "monitoring": {"worker_port": 0},
        }
        config = load_config(overrides=overrides, environ={})
        create_topics(config.kafka)
        config_path = work / "config.yaml"
        config_path.write_text(yaml.safe_dump(overrides))
        partitions = config.kafka.topics.impressions.partitions

        simulator = EventSimulator(config.simulator, config.schema)
        t = time.perf_counter()
        writer = EventLogWriter(config.kafka)
        events = writer.send_events(simulator.events(args.impressions))
        writer.flush()
        print(f"produced {events:,} events ({args.impressions:,} impressions) in {time.perf_counter() - t:.1f} s")

        inputs = [config.kafka.topics.impressions.name, config.kafka.topics.actions.name]
        raw_rate, raw_cpu, _ = raw_consume_rate(config, inputs, partitions, events)
        print(f"raw confluent-kafka consume (ceiling) {raw_rate:>10,.0f} events/s  "
              f"({events / raw_cpu:,.0f} events per CPU s)")  # fmt: skip

        env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
        floor_command = [sys.executable, __file__, "--floor", bootstrap, ",".join(inputs), str(events), str(work)]
        floor = subprocess.run(floor_command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
        found = re.search(r"FLOOR (\d+) (\d+)", floor.stdout + floor.stderr)  # faust may redirect stdout to its log
        floor_rate, floor_cpu_rate = (float(found[1]), float(found[2])) if found else (0.0, 0.0)
        print(f"faust agent doing nothing (floor)     {floor_rate:>10,.0f} events/s  "
              f"({floor_cpu_rate:,.0f} events per CPU s)")  # fmt: skip
        failures = 0
        for engine, role in (("kafka", "samples"), ("faust", "samples_replay")):
            rate, cpu_rate = measure_worker(config_path, engine, role, events, env, workers)
            label = f"pepnet worker (1 worker, {engine} engine)"
            print(f"{label:<38}{rate:>10,.0f} events/s  ({cpu_rate:,.0f} events per CPU s)")
            print(f"  ratio worker / raw consume          {rate / raw_rate:>10.1%}  (target >= 30%)")
            print(f"  ratio per CPU second                {cpu_rate / (events / raw_cpu):>10.1%}")
            if floor_rate and engine == "faust":
                print(f"  ratio worker / faust floor          {rate / floor_rate:>10.1%}  "
                      f"(faust floor / raw consume {floor_rate / raw_rate:.1%})")  # fmt: skip
            failures += check_samples(config, simulator, getattr(config.kafka.topics, role).name, args.impressions)
            stop(workers.pop())
        if args.workers > 1:  # scale-out: the same input into the replay topic, read once more
            rate, cpu_rate = measure_worker(config_path, "kafka", "samples_replay", events, env, workers, args.workers)
            label = f"{args.workers} workers (kafka engine, one group)"
            print(f"{label:<38}{rate:>10,.0f} events/s  ({cpu_rate:,.0f} events per CPU s)")
            print(f"  ratio workers / raw consume         {rate / raw_rate:>10.1%}")
        return 1 if failures else 0
    finally:
        for worker in workers:
            stop(worker)
        if broker is not None:
            broker.down()
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
