"""`pepnet train` through a broker outage (a broker of the test's own, stopped for a minute and
started again): the trainer says once that the broker is unreachable, prints at most a few lines of
its own in that minute, then says that it is back and trains the samples produced since."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stream.config.pipeline import load_config
from stream.kafka.topics import create_topics
from tests.pepnet_process import PepnetProcess
from tests.stream.kafka.own_broker import OwnBroker, start_own_broker

from .kafka_samples import SMALL_TRAINER, fill_samples_topic, simulated_samples

pytestmark = pytest.mark.kafka

OUTAGE_S = 60.0
PASS_LINE = re.compile(r"pass (\d+): ")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = start_own_broker(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.down()


def test_train_through_a_broker_outage(own_broker: OwnBroker, tmp_path: Path) -> None:
    overrides = {
        **SMALL_TRAINER,
        "kafka": {"bootstrap": own_broker.bootstrap,
                  "topics": {"samples": {"name": "outage.samples", "settings": {"retention.ms": "-1"}}}},
        "trainer": {**SMALL_TRAINER["trainer"], "pass_samples": 500},
    }  # fmt: skip
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(overrides))
    config = load_config(config_path, environ={})
    create_topics(config.kafka)
    samples = simulated_samples(config, 3000)
    fill_samples_topic(config, samples[:1500])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    trainer = PepnetProcess(["train", "--config", str(config_path), "--run-dir", str(tmp_path / "run")],
                            tmp_path / "train.log", env)  # fmt: skip
    try:
        first = trainer.wait_for(r"trainer: reading outage\.samples .* metrics at ")
        trained = trainer.wait_for(r"pass 0: ", after=first)
        before = len(trainer.lines())
        outage_started = time.monotonic()
        own_broker.down()
        trainer.wait_for(r"unreachable", after=before, timeout_s=OUTAGE_S)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))  # the outage itself
        # Passes of samples read before the outage may still close; the rest is about the broker.
        during = [line for line in trainer.lines()[before:] if not PASS_LINE.search(line)]
        own_broker.up()
        back = trainer.wait_for(r"reachable again after \d+ s", after=before)
        fill_samples_topic(config, samples[1500:])
        trainer.wait_for(r"pass \d+: ", after=back)  # it trains again
    finally:
        trainer.stop()
    assert trained > first
    # At most a few lines of its own in the outage minute, each saying what is wrong.
    assert 1 <= len(during) <= 3, during
    for line in during:
        assert f"broker {own_broker.bootstrap} unreachable" in line or "still failing" in line, during
    # Nothing else in the whole run: no librdkafka line, no traceback, no echo of the outage.
    # (The test's own Ctrl-C ends the run: the trainer says it finishes the pass, then what it trained.)
    known = re.compile(
        r"trainer: reading |pass \d+: |unreachable \(|still failing|reachable again after|^interrupted$"
        r"|SIGINT: finishing the pass in training|^stopped by SIGINT; trained \d+ passes"
    )
    assert [line for line in trainer.lines() if not known.search(line)] == []
