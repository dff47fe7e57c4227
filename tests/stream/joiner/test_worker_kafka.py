"""`pepnet worker` against the real broker: the join equals the simulator's ground truth, survives
kill -9, replays identically, and sends every malformed event to the dead-letter topic.

Sizes are kept small for the suite (window 5 s of event time so that windows close by watermark
during the run); ``benchmarks/joiner.py`` runs the same check with 200,000 impressions.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from stream.config.pipeline import PipelineConfig
from stream.events.dead_letters import DeadLetter
from stream.events.formats import Action, Impression, LabelledSample, decode_sample, encode
from stream.joiner.event_log import EventLogWriter, read_topic
from stream.simulator import EventSimulator
from tests.conftest import REPO_ROOT
from tests.stream.joiner.malformed_events import KINDS, corrupt, kinds_for
from tests.stream.joiner.wrong_clocks import assert_wrong_clock_samples, with_wrong_clocks, wrong_clock_users
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

WINDOW_MS = 5_000
GRACE_MS = 3_000  # the simulator's delivery jitter (exponential, mean 200 ms) stays far below


class WorkerProcess:
    """`python -m stream.cli.main worker --config <file>` with its metrics endpoint."""

    def __init__(self, config_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
        command = [sys.executable, "-m", "stream.cli.main", "worker", "--config", str(config_path), *args]
        self.log = config_path.with_suffix(f".{time.monotonic_ns()}.log")  # kept in tmp_path for post-mortems
        with open(self.log, "wb") as stderr:
            self.process = subprocess.Popen(
                [*command, "--log-level", "INFO"], cwd=REPO_ROOT, env=env,
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        self.metrics_url = ""
        while not self.metrics_url:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"worker exited early with {self.process.wait()}")
            if line.startswith("metrics: "):
                self.metrics_url = line.split(" ", 1)[1].strip()

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the worker has its partitions and their state (after its first rebalance)."""
        self.wait_metric("pepnet_joiner_assigned_partitions", 1, "worker not ready", timeout_s)

    def wait_metric(self, name: str, at_least: float, failure: str, timeout_s: float = 60) -> None:
        """Until metric ``name`` reaches ``at_least`` while the worker runs; ``failure`` says what
        did not happen in ``timeout_s``."""
        self.wait_running_until(lambda: self.metric(name) >= at_least, failure, timeout_s)

    def wait_running_until(self, condition: Callable[[], bool], failure: str, timeout_s: float = 60) -> None:
        """Until ``condition()``; fails at once if the worker exits, or after ``timeout_s``."""
        wait_until(lambda: self.process.poll() is not None or condition(), failure, timeout_s)
        assert self.process.poll() is None, f"{failure}: the worker exited with {self.process.returncode}"

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        return sum(float(line.split()[-1]) for line in lines if line.split("{")[0].split(" ")[0] == name)

    def wait_consumed(self, count: int, timeout_s: float = 120) -> None:
        consumed = ("pepnet_joiner_impressions_consumed_total", "pepnet_joiner_actions_consumed_total")
        self.wait_running_until(lambda: sum(self.metric(n) for n in consumed) >= count, "worker too slow", timeout_s)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def write_worker_config(
    config: PipelineConfig, tmp_path: Path, name: str, engine: str = "kafka", idle_close_ms: int = 2000
) -> Path:
    """A worker config file; the app id (= state) is unique to the test's topics."""
    topics = {role: {"name": t.name} for role, t in config.kafka.topics.by_role().items()}
    app_id = config.kafka.topics.impressions.name.removesuffix(".impressions") + f".{name}"
    data = {
        "kafka": {"bootstrap": config.kafka.bootstrap, "topics": topics},
        "joiner": {
            "app_id": app_id, "window_ms": WINDOW_MS, "grace_ms": GRACE_MS, "idle_close_ms": idle_close_ms,
            "engine": engine, "session_timeout_s": 6.0, "faust": {"data_dir": str(tmp_path / "faust")},
        },
        "monitoring": {"worker_port": 0},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ground_truth(config: PipelineConfig, n: int) -> tuple[EventSimulator, dict[str, dict[str, int]]]:
    simulator = EventSimulator(config.simulator, config.schema)
    return simulator, {s.sample_id: s.labels for s, _ in simulator.labelled_samples(n, WINDOW_MS)}


def read_samples(config: PipelineConfig, role: str, expected: int) -> list[LabelledSample]:
    topic = getattr(config.kafka.topics, role)
    messages = read_topic(config.kafka, topic.name, topic.partitions, expected, timeout_s=150, settle_s=3)
    return [decode_sample(m.value) for m in messages]


def publish_paced(config: PipelineConfig, events: list[Impression | Action], per_second: float) -> None:
    """Produce ``events`` at about ``per_second`` (in chunks of 1/20 s); 0 = all at once."""
    writer = EventLogWriter(config.kafka)
    chunk = max(1, int(per_second / 20)) if per_second > 0 else len(events)
    started = time.monotonic()
    for i in range(0, len(events), chunk):
        writer.send_events(events[i : i + chunk])
        writer.flush()
        if per_second > 0:
            time.sleep(max(0.0, started + (i + chunk) / per_second - time.monotonic()))


def by_id(samples: list[LabelledSample]) -> dict[str, dict[str, int]]:
    """Samples keyed by id; duplicates (at-least-once) must be identical."""
    out: dict[str, dict[str, int]] = {}
    for s in samples:
        assert out.setdefault(s.sample_id, s.labels) == s.labels, f"duplicate {s.sample_id} differs"
    return out


ENGINES = pytest.mark.parametrize("engine", ["kafka", "faust"])


@ENGINES
def test_join_prelabelled_and_dead_letters(pipeline_config: PipelineConfig, tmp_path: Path, engine: str) -> None:
    n, malformed = 2500, 10_000
    simulator, truth = ground_truth(pipeline_config, n)
    events = list(simulator.events(n))
    prelabelled_sim = EventSimulator(replace(pipeline_config.simulator, seed=8), pipeline_config.schema)
    prelabelled = list(prelabelled_sim.prelabelled_impressions(300, WINDOW_MS))
    topics = pipeline_config.kafka.topics
    rng = random.Random(3)
    writer = EventLogWriter(pipeline_config.kafka)
    expected_reasons: Counter[str] = Counter()
    bad_values: Counter[bytes] = Counter()
    per_event = malformed / len(events)
    owed = 0.0
    for i, event in enumerate(events):
        writer.send_events([event])
        if i % 13 == 0 and prelabelled:
            writer.send_events([prelabelled.pop()])
        owed += per_event
        while owed >= 1:  # malformed copies of real events, mixed in all along the stream
            owed -= 1
            topic = topics.impressions.name if isinstance(event, Impression) else topics.actions.name
            if rng.random() < 0.05:  # a valid value under another user's key
                value, key, reason = encode(event), str(event.user_id + 1).encode(), "key_mismatch"
            else:
                kind = rng.choice(kinds_for(event))
                value, key, reason = corrupt(event, kind), event.key(), KINDS[kind][3]
            writer.send_raw(topic, key, value)
            expected_reasons[reason] += 1
            bad_values[value] += 1
    writer.send_events(prelabelled)
    writer.flush()
    assert sum(expected_reasons.values()) == malformed and len(expected_reasons) >= 10

    worker = WorkerProcess(write_worker_config(pipeline_config, tmp_path, "join-test", engine))
    try:
        samples = read_samples(pipeline_config, "samples", n + 300)
        letters = read_topic(pipeline_config.kafka, topics.dead_letters.name, topics.dead_letters.partitions,
                             malformed, timeout_s=60, settle_s=1)  # fmt: skip
        assert worker.metric("pepnet_dead_letters_total") == malformed
        assert worker.metric("pepnet_joiner_prelabelled_samples_total") == 300
    finally:
        worker.stop()

    joined = [s for s in samples if s.join.source == "join"]
    passed = [s for s in samples if s.join.source == "prelabelled"]
    assert len(joined) == n and by_id(joined) == truth  # exactly one, right labels, none lost
    assert len(passed) == 300 and all(s.labels == s.impression.labels for s in passed)
    parsed = [DeadLetter.from_message(m.key, m.value, m.headers) for m in letters]
    assert Counter(d.reason for d in parsed) == expected_reasons
    assert Counter(d.value for d in parsed) == bad_values  # original bytes, unchanged
    assert all(d.source_topic in (topics.impressions.name, topics.actions.name) for d in parsed)
    assert all(d.detail.split(":")[0] for d in parsed)


# Input is published at a pace while the worker runs, so that the kill lands mid-stream with state,
# samples and commits in flight, and the restarted worker has records fetched already when faust
# seeks to the committed offsets after its recovery (faust dropped those records, losing actions and
# impressions, until JoinerApp._rebuild_joiners held them back; see test_faust_app.py).
@pytest.mark.parametrize(("engine", "per_second"), [("kafka", 2500), ("faust", 2500)])
def test_kill_9_restart_and_replay_determinism(
    pipeline_config: PipelineConfig, tmp_path: Path, engine: str, per_second: float
) -> None:
    n = 4000  # 20 s of event time: windows (8 s) close all along
    simulator, truth = ground_truth(pipeline_config, n)
    events = list(simulator.events(n))
    publisher = threading.Thread(target=publish_paced, args=(pipeline_config, events, per_second), daemon=True)
    live_config = write_worker_config(pipeline_config, tmp_path, "live", engine)
    first = WorkerProcess(live_config)
    try:
        first.wait_ready()
        publisher.start()
        first.wait_consumed(len(events) // 2)
        first.wait_metric("pepnet_joiner_samples_emitted_total", 1, "no sample emitted by the first worker")
    finally:
        first.stop(signal.SIGKILL)
    before_restart = read_topic(pipeline_config.kafka, pipeline_config.kafka.topics.samples.name, 4)
    assert len(before_restart) < n  # killed halfway
    second = WorkerProcess(live_config)
    try:
        publisher.join()
        live = read_samples(pipeline_config, "samples", n)
    finally:
        second.stop()
    live_by_id = by_id(live)  # duplicates after the kill carry the same id and labels
    assert live_by_id == truth  # none lost, none invented, every label right

    replay_config = write_worker_config(pipeline_config, tmp_path, "replay", engine)
    replay = WorkerProcess(replay_config, "--output", "samples_replay")
    try:
        replayed = read_samples(pipeline_config, "samples_replay", n)
    finally:
        replay.stop()
    assert len(replayed) == n  # no crash: exactly once
    assert by_id(replayed) == truth  # a run from the beginning is exact
    as_set = {(s.sample_id, tuple(sorted(s.labels.items())), s.join.closed_at_watermark_ms) for s in replayed}
    live_set = {(s.sample_id, tuple(sorted(s.labels.items())), s.join.closed_at_watermark_ms) for s in live}
    assert as_set == live_set


def test_worker_refuses_missing_input_topics(kafka_broker: str, pepnet_cli, tmp_path: Path) -> None:
    config = tmp_path / "missing.yaml"
    topics = {"impressions": {"name": "test.none.impressions"}, "actions": {"name": "test.none.actions"}}
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap": kafka_broker, "topics": topics}}))
    result = pepnet_cli("worker", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: topic test.none.impressions")


@ENGINES
def test_two_workers_share_the_partitions(pipeline_config: PipelineConfig, tmp_path: Path, engine: str) -> None:
    n = 3000
    simulator, truth = ground_truth(pipeline_config, n)
    config_path = write_worker_config(pipeline_config, tmp_path, "shared", engine)
    workers = [WorkerProcess(config_path), WorkerProcess(config_path)]
    try:
        for worker in workers:
            worker.wait_ready()
        partitions = pipeline_config.kafka.topics.impressions.partitions

        def settled() -> bool:  # every partition owned, and by both workers
            assigned = [w.metric("pepnet_joiner_assigned_partitions") for w in workers]
            return sum(assigned) == partitions and min(assigned) >= 1

        wait_until(settled, "the rebalance settles (each worker owns partitions, all are owned)", 60)
        writer = EventLogWriter(pipeline_config.kafka)
        writer.send_events(simulator.events(n))
        writer.flush()
        samples = read_samples(pipeline_config, "samples", n)
        consumed = [w.metric("pepnet_joiner_impressions_consumed_total") for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert by_id(samples) == truth  # a rebalance may duplicate a sample, never change or lose one
    assert all(c > 0 for c in consumed) and sum(consumed) >= n


def test_a_worker_joining_mid_stream_duplicates_nothing(pipeline_config: PipelineConfig, tmp_path: Path) -> None:
    """A second worker joins while the first is emitting samples: the first writes its state
    (emitted impressions' records deleted) and waits for it before it lets partitions go, so the
    new owner restores no impression already emitted. Unlike a kill -9, a clean rebalance is exact:
    every impression exactly once, with its ground-truth labels."""
    n = 4000
    simulator, truth = ground_truth(pipeline_config, n)
    events = list(simulator.events(n))
    publisher = threading.Thread(target=publish_paced, args=(pipeline_config, events, 2500), daemon=True)
    config_path = write_worker_config(pipeline_config, tmp_path, "joining")
    first = WorkerProcess(config_path)
    workers = [first]
    try:
        first.wait_ready()
        publisher.start()
        first.wait_metric("pepnet_joiner_samples_emitted_total", 1, "no sample emitted by the first worker")
        workers.append(WorkerProcess(config_path))  # joins the group: partitions move mid-stream
        workers[1].wait_ready()
        publisher.join()
        samples = read_samples(pipeline_config, "samples", n)
    finally:
        for worker in workers:
            worker.stop()
    assert by_id(samples) == truth
    assert len(samples) == n, f"{len(samples) - n} samples emitted twice"


def test_switching_engines_keeps_the_state(pipeline_config: PipelineConfig, tmp_path: Path) -> None:
    """faust stops halfway (SIGTERM), the kafka engine goes on from its commits and its state records.

    The first 70% of the stream is published, faust joins until it has emitted samples (windows
    closed by the watermark; no idle close, which would close the impressions whose actions are
    still to come), stops; then the rest is published for the kafka engine. Every step waits for a
    condition, so a loaded machine only makes it slower.
    """
    n = 3000
    simulator, truth = ground_truth(pipeline_config, n)
    events = list(simulator.events(n))
    split = int(len(events) * 0.7)
    writer = EventLogWriter(pipeline_config.kafka)
    writer.send_events(events[:split])
    writer.flush()
    first = WorkerProcess(write_worker_config(pipeline_config, tmp_path, "switch", "faust", idle_close_ms=0))
    try:
        first.wait_metric("pepnet_joiner_samples_emitted_total", 1, "the faust worker emitted no sample", 120)
    finally:
        first.stop()
    assert first.process.returncode == 0
    before_switch = read_topic(pipeline_config.kafka, pipeline_config.kafka.topics.samples.name, 4)
    assert 0 < len(before_switch) < n
    writer.send_events(events[split:])
    writer.flush()
    second = WorkerProcess(write_worker_config(pipeline_config, tmp_path, "switch", "kafka"))
    try:
        samples = read_samples(pipeline_config, "samples", n)
        read_again = second.metric("pepnet_joiner_impressions_consumed_total")
    finally:
        second.stop()
    assert by_id(samples) == truth
    assert read_again < n  # it resumed from faust's commits instead of reading everything again


def test_wrong_device_clocks_leave_every_other_impression_with_its_ground_truth_labels(
    pipeline_config: PipelineConfig, tmp_path: Path
) -> None:
    """A few users of several partitions have clocks minutes to days ahead or behind: their events
    are joined without moving the stream time (ahead by less than joiner.max_ahead_ms; closed when
    the stream gets there, with their true labels), dead-lettered as future_event_time (further
    ahead) or emitted unlabelled (behind); every other impression gets exactly its ground-truth
    labels."""
    n = 3000
    simulator, truth = ground_truth(pipeline_config, n)
    events = list(simulator.events(n))
    offsets = wrong_clock_users(events)
    writer = EventLogWriter(pipeline_config.kafka)
    writer.send_events(with_wrong_clocks(events, offsets))
    writer.flush()
    max_ahead = pipeline_config.joiner.max_ahead_ms
    owner = {e.impression_id: e.user_id for e in events if isinstance(e, Impression)}
    good = {k: labels for k, labels in truth.items() if owner[k] not in offsets}
    behind = [k for k in truth if offsets.get(owner[k], 0) < 0]
    far = {u for u, o in offsets.items() if o > max_ahead}
    far_events = sum(1 for e in events if e.user_id in far)
    worker = WorkerProcess(write_worker_config(pipeline_config, tmp_path, "clocks"))
    try:
        samples = read_samples(pipeline_config, "samples", len(good) + len(behind))
        topic = pipeline_config.kafka.topics.dead_letters
        letters = read_topic(pipeline_config.kafka, topic.name, topic.partitions)  # all produced by now
        assert worker.metric("pepnet_joiner_ahead_events_total") > 0
    finally:
        worker.stop()
    inputs = read_topic(pipeline_config.kafka, pipeline_config.kafka.topics.impressions.name, 4)
    partitions = {m.partition for m in inputs if int(m.key) in offsets}
    assert len(partitions) >= 3  # wrong clocks in several partitions

    assert by_id([s for s in samples if owner[s.sample_id] not in offsets]) == good
    assert_wrong_clock_samples([s for s in samples if owner[s.sample_id] in offsets], truth, behind)
    parsed = [DeadLetter.from_message(m.key, m.value, m.headers) for m in letters]
    assert {d.reason for d in parsed} == {"future_event_time"} and {int(d.key) for d in parsed} == far
    # Before an input has a stream time (its first users) nothing is "ahead": joined, never emitted.
    assert far_events - 2 * 4 * pipeline_config.joiner.clock_jump_users <= len(parsed) <= far_events
