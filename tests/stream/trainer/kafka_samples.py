"""Simulated labelled samples written straight to a test's samples topic (no faust worker)."""

from __future__ import annotations

from stream.config.pipeline import PipelineConfig, load_config
from stream.events.formats import LabelledSample
from stream.kafka.topics import create_topics
from stream.simulator.generator import EventSimulator
from stream.trainer.sample_producer import produce_samples

# Small and fast: tiny table (a checkpoint writes the whole table), small passes, one thread.
SMALL_TRAINER = {
    "embedding_store": {"budget_bytes": 2 * 1024 * 1024, "dim": 8},
    "model": {"tower_hidden": [32], "gate_hidden": 16, "bottom_hidden": [32], "expert_hidden": [32]},
    "monitoring": {"enabled": False},
    "trainer": {"pass_samples": 200, "batch_size": 64, "deterministic": True, "consume_messages": 500},
}


def kafka_overrides(pipeline_config: PipelineConfig) -> dict:
    """The test's broker and topics; the samples topic keeps its messages forever: simulated event
    times (message timestamps) lie years back and would fall to the broker's 7-day time retention."""
    topics = {role: {"name": t.name} for role, t in pipeline_config.kafka.topics.by_role().items()}
    topics["samples"] = {"name": topics["samples"]["name"] + ".kept", "settings": {"retention.ms": "-1"}}
    return {"bootstrap": pipeline_config.kafka.bootstrap, "topics": topics}


def small_config(pipeline_config: PipelineConfig, **trainer: object) -> PipelineConfig:
    """``pipeline_config`` (its broker, topics and run_dir) with the small trainer settings."""
    overrides = {"kafka": kafka_overrides(pipeline_config), "run_dir": pipeline_config.run_dir, **SMALL_TRAINER}
    overrides["trainer"] = {**SMALL_TRAINER["trainer"], **trainer}
    config = load_config(overrides=overrides, environ={})
    create_topics(config.kafka)
    return config


def simulated_samples(config: PipelineConfig, n: int, window_ms: int = 300_000) -> list[LabelledSample]:
    simulator = EventSimulator(config.simulator, config.schema)
    return [sample for sample, _ in simulator.labelled_samples(n, window_ms)]


def fill_samples_topic(config: PipelineConfig, samples: list[LabelledSample]) -> int:
    return produce_samples(config.kafka, config.kafka.topics.samples.name, samples)
