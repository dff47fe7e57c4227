"""Events/s through `pepnet worker` against the raw confluent-kafka consume rate of the same input
topics (the ceiling), measured in the same run, and the ratios (target: one process >= 30%).

In one run, on the same topics: the raw consume; a faust agent that does nothing (faust's floor);
`pepnet worker` with the kafka engine in 1 process and with `--processes N`; the faust engine;
and the memory a pending impression costs (RSS of a worker that keeps every impression pending:
its growth divided by their number, and its slope over eight readings; target <= 1 KiB; beside
it, the join's own structures in a process without Kafka). Every measured worker writes its own samples
topic, checked against the simulator's ground truth (``EventSimulator.labelled_samples``): every
impression exactly once, every label right.

    python benchmarks/joiner.py                          # local broker on free ports, 200k impressions
    python benchmarks/joiner.py --impressions 20000 --bootstrap 127.0.0.1:19092

A worker's rate is its consumption rate: valid events counted by its metrics endpoint between
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
from collections.abc import Callable
from pathlib import Path

# benchmarks/embedding_store.py shadows the package of that name: import from the repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO_ROOT)] + [e for e in sys.path if Path(e or ".").resolve() != REPO_ROOT / "benchmarks"]

import psutil  # noqa: E402
import yaml  # noqa: E402
from confluent_kafka import TopicPartition  # noqa: E402

from stream.config.pipeline import load_config  # noqa: E402
from stream.events.formats import Impression, decode_sample  # noqa: E402
from stream.joiner.consumer_loop import prefetch_settings  # noqa: E402
from stream.joiner.event_log import EventLogWriter, read_topic  # noqa: E402
from stream.kafka.clients import new_consumer  # noqa: E402
from stream.kafka.config import TopicsConfig  # noqa: E402
from stream.kafka.topics import create_topics  # noqa: E402
from stream.simulator import EventSimulator  # noqa: E402

PARTS = 8  # memory: readings of RSS over the input
_CONSUMED = re.compile(r"^pepnet_joiner_(impressions|actions)_consumed_total ([0-9.e+]+)$", re.M)


def raw_consume_rate(config, topics: list[str], partitions: int, total: int) -> tuple[float, float, int]:
    """Read every message of ``topics`` with ``consume(1000)`` and the worker's prefetch settings:
    (events/s, CPU s, messages)."""
    consumer = new_consumer(
        config.kafka, f"bench-raw-{uuid.uuid4().hex[:8]}", name="raw consume", overrides=prefetch_settings(config.kafka)
    )  # the worker's prefetch settings: with librdkafka's fetch backoff, one read in two ran at ~60%
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


def join_structures(impressions: int) -> None:
    """Child process: the memory of the join's own structures per pending impression, without
    Kafka or the allocator: bytes traced by ``tracemalloc`` while one ``PartitionJoiner`` (1-day
    window) takes the simulator's impressions, decoded as the worker decodes them; prints it."""
    import tracemalloc

    from stream.events.formats import encode
    from stream.events.typed_decoder import TypedEventDecoder
    from stream.joiner.partition_joiner import PartitionJoiner

    config = load_config(overrides={}, environ={})
    decoder = TypedEventDecoder(config.schema, config.joiner.validation)
    events = EventSimulator(config.simulator, config.schema).events(impressions)
    wire = [(encode(e), e.key()) for e in events if isinstance(e, Impression)]
    now_ms = int(time.time() * 1000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    joiner = PartitionJoiner(0, config.schema.task_names, 86_400_000, config.joiner.grace_ms)
    for offset, (value, key) in enumerate(wire):
        value = bytes(bytearray(value))  # a bytes object of its own, as the consumer hands it over
        joiner.on_impression(decoder.impression(value, key, now_ms), offset, value)
        if offset % 2000 == 1999 or offset == len(wire) - 1:  # the worker's batches, and the last
            joiner.drain_samples()
            for _ in joiner.take_changes():  # encoded one by one and dropped, as when produced
                pass
    print(f"STRUCTURES {(tracemalloc.get_traced_memory()[0] - before) / joiner.pending_count:.0f}", flush=True)


def scrape(url: str, pattern: re.Pattern[str] = _CONSUMED) -> float | None:
    """Sum of the matching samples of a metrics page; None if it did not answer in time (load)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    return sum(float(v) for _, v in pattern.findall(text))


class WorkerRun:
    """`pepnet worker --config <file> [--processes N]` in a subprocess, with its metrics endpoint."""

    def __init__(self, config_path: Path, engine: str, env: dict[str, str], processes: int = 1) -> None:
        command = [
            sys.executable, "-m", "stream.cli.main", "worker", "--config", str(config_path), "--log-level", "WARNING",
            "--engine", engine, *(["--processes", str(processes)] if processes > 1 else []),
        ]  # fmt: skip
        self.engine = engine
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{engine} worker exited before printing its metrics URL")
            if line.startswith("metrics: "):
                self.url = line.split(" ", 1)[1].strip()
                break
        self.psutil = psutil.Process(self.process.pid)
        self._consumed = 0.0

    def consumed(self) -> float:
        """Valid events read so far (the last answer if the endpoint is slow)."""
        value = scrape(self.url)
        if value is not None:
            self._consumed = value
        return self._consumed

    def processes(self) -> list[psutil.Process]:
        return [self.psutil, *self.psutil.children(recursive=True)]

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the worker and its child processes."""
        total = 0.0
        for process in self.processes():
            try:
                total += sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return total

    def rss(self) -> int:
        """Resident bytes of the worker and its child processes."""
        return sum(process.memory_info().rss for process in self.processes())

    def wait_consumed(self, events: int, fine_s: float = 0.05, coarse_s: float = 0.5) -> tuple[float, float]:
        """Until ``events`` were read: (events/s, events per CPU s) between the first reading that
        shows events read and the first that shows all of them.

        Each reading of the endpoint costs the worker a few ms of its one Python thread (a
        Prometheus server scrapes every 5-15 s), so it is read every ``fine_s`` only until the
        first event and when the end is less than two coarse steps away at the rate so far, and
        every ``coarse_s`` in between: both ends are known within ``fine_s``.
        """
        first: tuple[float, float, float] | None = None  # (time, events read, CPU s)
        while True:
            consumed = self.consumed()
            now = time.perf_counter()
            if consumed > 0 and first is None:
                first = (now, consumed, self.cpu_s())
            if consumed >= events:
                cpu = self.cpu_s()
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.engine} worker exited early")
            step = fine_s
            if first is not None and consumed > first[1]:
                remaining_s = (events - consumed) * (now - first[0]) / (consumed - first[1])
                step = coarse_s if remaining_s > 2 * coarse_s else fine_s
            time.sleep(step)
        counted = consumed - first[1]
        if counted <= 0:
            raise RuntimeError(f"the {self.engine} worker read all events before the first reading: give it more")
        return counted / (now - first[0]), counted / max(cpu - first[2], 1e-9)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


_PENDING = re.compile(r"^pepnet_joiner_(pending)_impressions ([0-9.e+]+)$", re.M)
_ASSIGNED = re.compile(r"^pepnet_joiner_(assigned)_partitions ([0-9.e+]+)$", re.M)


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


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 1800) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run_config(base: dict, work: Path, name: str, joiner: dict | None = None) -> tuple[Path, object]:
    """A worker config writing to its own samples topic (created), under its own app id."""
    prefix = base["joiner"]["app_id"]
    topics = {**base["kafka"]["topics"], "samples": {"name": f"{prefix}.{name}.samples"}}
    overrides = {
        **base,
        "kafka": {**base["kafka"], "topics": topics},
        "joiner": {**base["joiner"], "app_id": f"{prefix}-{name}", **(joiner or {})},
    }
    config = load_config(overrides=overrides, environ={})
    create_topics(config.kafka)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path, config


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def pending_rss(run: WorkerRun, impressions: int, settle_s: float) -> int:
    """The worker's RSS (bytes) once it holds ``impressions`` pending impressions, ``settle_s``
    after that (two commits: their state is written, acknowledged and freed)."""
    wait_for(lambda: (scrape(run.url, _PENDING) or 0) >= impressions, f"{impressions:,} impressions pending")
    time.sleep(settle_s)
    return run.rss()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--bootstrap", default="", help="existing broker (default: start a local one)")
    parser.add_argument("--processes", type=int, default=2, help="also measure `pepnet worker --processes N` (N > 1)")
    parser.add_argument("--skip-faust", action="store_true", help="leave out faust's floor and engine (quicker)")
    parser.add_argument("--structures", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=4, metavar=("BOOTSTRAP", "TOPICS", "EVENTS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.structures:  # child process of the measurement below
        join_structures(args.structures)
        return 0
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
    running: list[WorkerRun] = []
    work = Path(tempfile.mkdtemp(prefix="bench-joiner-work-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}

    def start(path: Path, engine: str, processes: int = 1) -> WorkerRun:
        running.append(WorkerRun(path, engine, env, processes))
        return running[-1]

    def finish(run: WorkerRun) -> None:
        run.stop()
        running.remove(run)

    try:
        prefix = f"bench.{uuid.uuid4().hex[:8]}"
        topics = {role: {"name": f"{prefix}.{role}"} for role in TopicsConfig().by_role()}
        base = {
            "kafka": {
                "bootstrap": bootstrap,
                "topics": {r: {"name": f"{prefix}.{r}"} for r in TopicsConfig().by_role()},
            },
            "joiner": {"app_id": prefix, "faust": {"data_dir": str(work / "faust")}},
            "monitoring": {"worker_port": 0},
        }
        config = load_config(overrides=base, environ={})
        create_topics(config.kafka)
        partitions = config.kafka.topics.impressions.partitions
        inputs = [config.kafka.topics.impressions.name, config.kafka.topics.actions.name]

        # Memory: a worker whose windows never close (1 day, no idle close) starts on the empty
        # topics; its RSS growth over the input, divided by the impressions it then holds pending.
        memory_path, _ = run_config(base, work, "memory", {"window_ms": 86_400_000, "idle_close_ms": 0})
        memory_run = start(memory_path, "kafka")
        wait_for(lambda: (scrape(memory_run.url, _ASSIGNED) or 0) >= 1, "the memory worker's partitions", 120)
        baseline_rss = memory_run.rss()

        simulator = EventSimulator(config.simulator, config.schema)
        t = time.perf_counter()
        writer = EventLogWriter(config.kafka)
        stream = list(simulator.events(args.impressions))
        # The input in PARTS parts, the RSS read after each: the marginal cost is the slope of RSS
        # over pending impressions across the readings (least squares), without the fixed buffers
        # the first part fills. RSS keeps the high-water mark of each commit's burst of state
        # records (~2 s of input): between two of four readings the slope ranged from ~500 to
        # ~1,500 B per impression. So many readings, each two commits after its part.
        readings: list[tuple[int, int]] = []  # (impressions pending, RSS bytes)
        events = pending = 0
        settle_s = 2 * config.joiner.loop.commit_interval_s + 0.5
        for part in range(PARTS):
            chunk = stream[part * len(stream) // PARTS : (part + 1) * len(stream) // PARTS]
            events += writer.send_events(chunk)
            writer.flush()
            pending += sum(isinstance(e, Impression) for e in chunk)
            readings.append((pending, pending_rss(memory_run, pending, settle_s)))
        print(f"produced {events:,} events ({args.impressions:,} impressions) in {time.perf_counter() - t:.1f} s")
        per_pending = (readings[-1][1] - baseline_rss) / args.impressions
        marginal = slope(readings)
        finish(memory_run)
        structures_command = [sys.executable, __file__, "--structures", str(args.impressions)]
        child = subprocess.run(structures_command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
        found = re.search(r"STRUCTURES (\d+)", child.stdout)
        if found is None:
            raise RuntimeError(f"measuring the join structures failed: {child.stderr.strip()[-2000:]}")
        structures = float(found[1])

        # The ceiling is the best of three reads: one read takes 1-3 s, and the broker's own work
        # (compacting the memory worker's state topic) can slow any one of them.
        raws = [raw_consume_rate(config, inputs, partitions, events) for _ in range(3)]
        raw_rate, raw_cpu, _ = max(raws)
        raw_cpu_rate = events / raw_cpu
        print(f"{'raw confluent-kafka consume (ceiling)':<44}{raw_rate:>10,.0f} events/s  "
              f"({raw_cpu_rate:,.0f} events per CPU s; best of "
              f"{', '.join(f'{r:,.0f}' for r, _, _ in raws)} events/s)")  # fmt: skip
        floor_rate = 0.0
        if not args.skip_faust:
            floor_command = [sys.executable, __file__, "--floor", bootstrap, ",".join(inputs), str(events), str(work)]
            floor = subprocess.run(floor_command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
            found = re.search(r"FLOOR (\d+) (\d+)", floor.stdout + floor.stderr)  # faust may log to stdout
            floor_rate, floor_cpu_rate = (float(found[1]), float(found[2])) if found else (0.0, 0.0)
            print(f"{'faust agent doing nothing (floor)':<44}{floor_rate:>10,.0f} events/s  "
                  f"({floor_cpu_rate:,.0f} events per CPU s)")  # fmt: skip

        measured = [("kafka", 1)] + ([("kafka", args.processes)] if args.processes > 1 else [])
        measured += [] if args.skip_faust else [("faust", 1)]
        failures = 0
        for engine, processes in measured:
            path, run_cfg = run_config(base, work, f"{engine}-{processes}")
            run = start(path, engine, processes)
            rate, cpu_rate = run.wait_consumed(events)
            label = f"pepnet worker --engine {engine}" + (f" --processes {processes}" if processes > 1 else "")
            print(f"{label:<44}{rate:>10,.0f} events/s  ({cpu_rate:,.0f} events per CPU s)")
            target = "  (target >= 30%)" if (engine, processes) == ("kafka", 1) else ""
            print(f"  {'ratio to the raw consume':<42}{rate / raw_rate:>10.1%}{target}")
            print(f"  {'ratio per CPU second':<42}{cpu_rate / raw_cpu_rate:>10.1%}")
            if engine == "faust" and floor_rate:
                print(f"  {'ratio to the faust floor':<42}{rate / floor_rate:>10.1%}")
            failures += check_samples(run_cfg, simulator, run_cfg.kafka.topics.samples.name, args.impressions)
            finish(run)
        print(f"{'RSS per pending impression':<44}{marginal:>10,.0f} bytes  (target <= 1,024; slope of RSS over "
              f"pending impressions, {PARTS} readings: RSS {', '.join(f'{r / 2**20:,.0f}' for _, r in readings)} MiB "
              f"at {', '.join(f'{n:,}' for n, _ in readings)} pending)")  # fmt: skip
        print(f"{'  growth over the input / pending':<44}{per_pending:>10,.0f} bytes  (fixed buffers in: prefetch "
              f"and producer queues, state bursts; RSS before the input {baseline_rss / 2**20:,.0f} MiB)")  # fmt: skip
        print(f"{'  the join structures alone':<44}{structures:>10,.0f} bytes  (traced by tracemalloc: one "
              f"PartitionJoiner taking {args.impressions:,} impressions, no Kafka, no allocator)")  # fmt: skip
        return 1 if failures else 0
    finally:
        for run in running:
            run.stop()
        if broker is not None:
            broker.down()
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
