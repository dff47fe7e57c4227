"""``pepnet evaluate --topic``: a range of a real samples topic, in a reproducible order."""

from __future__ import annotations

import json

import pytest
import yaml

from stream.cli.main import main
from stream.config.pipeline import load_config
from stream.evaluation.progressive import run_evaluation
from stream.evaluation.sources import JsonLinesSource
from stream.evaluation.topic_source import TopicSource
from stream.kafka.clients import new_producer
from stream.kafka.topics import create_topics
from stream.simulator.generator import EventSimulator
from stream.trainer.replay import ReplayRange
from tests.stream.evaluation.test_sources import figures

pytestmark = pytest.mark.kafka

SAMPLES = 2000


def produce_lines(config, topic: str, lines: list[str]) -> None:
    """Each line as one message, keyed by user id and stamped with its event time (as the joiner does)."""
    producer = new_producer(config.kafka, name="test producer")
    for line in lines:
        impression = json.loads(line)["impression"]
        producer.produce(
            topic, line.encode(), str(impression["user_id"]).encode(), timestamp=impression["event_time_ms"]
        )
        producer.poll(0)
    assert producer.flush(30) == 0


@pytest.fixture
def topics(pipeline_config, tmp_path):
    """The test's topics plus a one-partition samples_replay topic, and the simulator's samples file."""
    topic_names = {role: {"name": t.name} for role, t in pipeline_config.kafka.topics.by_role().items()}
    topic_names["samples_replay"] = {"name": topic_names["samples_replay"]["name"] + ".one", "partitions": 1}
    topic_names["samples"] = {"name": topic_names["samples"]["name"] + ".kept"}
    for role in ("samples", "samples_replay"):  # simulated event times lie years back: keep them
        topic_names[role]["settings"] = {"retention.ms": "-1"}
    kafka = {"bootstrap": pipeline_config.kafka.bootstrap, "topics": topic_names}
    config = load_config(overrides={"kafka": kafka, "monitoring": {"enabled": False}}, environ={})
    create_topics(config.kafka)
    path = tmp_path / "samples.jsonl"
    EventSimulator(config.simulator, config.schema).write_samples(path, SAMPLES, config.joiner.window_ms)
    return config, kafka, path


def test_a_one_partition_topic_reproduces_the_file_and_ranges_bound_it(topics):
    config, _kafka, path = topics
    lines = path.read_text().splitlines()
    topic = config.kafka.topics.samples_replay.name
    produce_lines(config, topic, lines)
    whole = TopicSource(config.kafka, topic, config.schema, ReplayRange())
    from_topic = run_evaluation(config, ["shared_bottom"], whole, 256)
    from_file = run_evaluation(config, ["shared_bottom"], JsonLinesSource(path, config.schema), 256)
    assert figures(from_topic) == figures(from_file) and "oracle" in from_topic.models
    assert from_topic.source == f"2,000 labelled samples of topic {topic} (partition:offsets 0:0-2000)"
    ids = [json.loads(line)["sample_id"] for line in lines]
    times = [json.loads(line)["impression"]["event_time_ms"] for line in lines]

    def read(span: ReplayRange) -> list[str]:
        source = TopicSource(config.kafka, topic, config.schema, span)
        return [s for chunk in source.chunks() for s in chunk.batch.sample_id]

    assert read(ReplayRange(from_offsets={0: 500}, to_offsets={0: 1500})) == ids[500:1500]
    t0, t1 = times[700], times[1200]
    assert read(ReplayRange(from_time_ms=t0, to_time_ms=t1)) == [
        i for i, t in zip(ids, times, strict=True) if t0 <= t < t1
    ]


def test_the_cli_merges_partitions_by_event_time_and_skips_bad_messages(topics, tmp_path, capsys):
    config, kafka, path = topics
    topic = config.kafka.topics.samples.name
    produce_lines(config, topic, path.read_text().splitlines())
    producer = new_producer(config.kafka, name="test producer")
    producer.produce(topic, b"{not json", b"1")  # skipped and counted
    assert producer.flush(30) == 0
    settings = tmp_path / "config.yaml"
    settings.write_text(yaml.safe_dump({"kafka": kafka, "monitoring": {"enabled": False}}))
    out = tmp_path / "out"
    args = ["--config", str(settings), "evaluate", "--topic", topic, "--models", "shared_bottom", "--out", str(out)]
    assert main([*args, "--predictions", str(tmp_path / "p.jsonl")]) == 0
    text = capsys.readouterr().out
    assert f"Progressive validation on 2,000 labelled samples of topic {topic}" in text
    assert "1 undecodable messages skipped" in text and "| oracle |" in text
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    by_id = {json.loads(line)["sample_id"]: json.loads(line) for line in path.read_text().splitlines()}
    times = [by_id[r["sample_id"]]["impression"]["event_time_ms"] for r in rows]
    assert len(rows) == SAMPLES and times == sorted(times)  # four partitions merged in event-time order
