"""Real-broker test of ``pepnet simulate``: the simulated stream lands in the topics and reads back intact."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import defaultdict

import pytest

from stream.cli import simulate as simulate_cli
from stream.events.formats import Action, Impression, action_from_dict, encode, impression_from_dict
from stream.kafka.clients import new_consumer
from stream.kafka.config import KafkaConfig
from stream.simulator import EventSimulator
from stream.simulator.oracle import read_oracle_jsonl
from stream.simulator.publisher import PublishOptions, publish_simulation

pytestmark = pytest.mark.kafka

IMPRESSIONS = 3000


def consume_all(kafka: KafkaConfig, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Every message of ``topic`` from the beginning, until ``expected`` arrived (or the timeout)."""
    consumer = new_consumer(kafka, f"sim-check-{uuid.uuid4().hex[:8]}", name="test consumer")
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                assert message.error() is None, message.error()
                messages.append(message)
        # Nothing beyond what was sent.
        messages.extend(m for m in consumer.consume(500, 1.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def impression_or_action(message) -> Impression | Action:
    data = json.loads(message.value())
    return impression_from_dict(data) if "item_id" in data else action_from_dict(data)


def run_cli(config, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    simulate_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    return args.handler(args, config)


def test_simulate_publishes_every_event_keyed_by_user(pipeline_config, tmp_path, capsys):
    oracle_path = tmp_path / "oracle.jsonl"
    code = run_cli(pipeline_config, "--impressions", str(IMPRESSIONS), "--no-progress", "--oracle", str(oracle_path))
    assert code == 0
    out = capsys.readouterr().out
    sim = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    expected = list(sim.events(IMPRESSIONS))
    impressions = [e for e in expected if isinstance(e, Impression)]
    actions = [e for e in expected if not isinstance(e, Impression)]
    assert f"sent {IMPRESSIONS} impressions" in out and f"and {len(actions)} actions" in out

    kafka = pipeline_config.kafka
    got_impressions = consume_all(kafka, kafka.topics.impressions.name, len(impressions))
    got_actions = consume_all(kafka, kafka.topics.actions.name, len(actions))
    assert len(got_impressions) == len(impressions) and len(got_actions) == len(actions)
    for message in got_impressions + got_actions:
        assert message.key() == str(impression_or_action(message).user_id).encode()
    assert sorted(m.value() for m in got_impressions) == sorted(encode(e) for e in impressions)
    assert sorted(m.value() for m in got_actions) == sorted(encode(e) for e in actions)
    # Per user (= per partition key) the log order of the simulator is kept.
    for got, sent in ((got_impressions, impressions), (got_actions, actions)):
        by_user_got, by_user_sent = defaultdict(list), defaultdict(list)
        for m in sorted(got, key=lambda m: (m.partition(), m.offset())):
            by_user_got[m.key()].append(m.value())
        for e in sent:
            by_user_sent[e.key()].append(encode(e))
        assert by_user_got == by_user_sent
    # The oracle file describes the same impressions.
    records = read_oracle_jsonl(oracle_path)
    assert set(records) == {i.impression_id for i in impressions}


def test_simulate_prelabelled_and_rate_limited(pipeline_config):
    sim = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    options = PublishOptions(impressions=400, rate=2000.0, labelled=True, window_ms=pipeline_config.joiner.window_ms)
    report = publish_simulation(sim, pipeline_config.kafka, options)
    assert report.impressions == 400 and report.actions == 0 and report.failed == 0
    assert report.seconds >= 400 / 2000.0 * 0.8  # paced, not as fast as possible
    kafka = pipeline_config.kafka
    got = consume_all(kafka, kafka.topics.impressions.name, 400)
    expected = {s.sample_id: s.labels for s, _ in sim.labelled_samples(400, pipeline_config.joiner.window_ms)}
    assert len(got) == 400
    received = {imp.impression_id: imp.labels for imp in map(impression_or_action, got)}
    assert received == expected


def test_simulate_reports_an_unreachable_broker_in_one_line(pipeline_config):
    from dataclasses import replace

    from stream.config.errors import UserError

    unreachable = replace(pipeline_config.kafka, bootstrap="127.0.0.1:1", connect_timeout_s=1.0)
    sim = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    with pytest.raises(UserError, match="cannot reach Kafka at 127.0.0.1:1"):
        publish_simulation(sim, unreachable, PublishOptions(impressions=10))


def test_simulate_for_a_duration_at_a_rate(pipeline_config):
    sim = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    report = publish_simulation(sim, pipeline_config.kafka, PublishOptions(duration_s=1.0, rate=3000.0))
    assert report.failed == 0
    assert 0.9 <= report.seconds < 10.0
    assert 1500 <= report.events <= 4500  # about rate x duration events
    got = consume_all(pipeline_config.kafka, pipeline_config.kafka.topics.impressions.name, report.impressions)
    assert len(got) == report.impressions
