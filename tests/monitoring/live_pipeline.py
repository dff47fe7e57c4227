"""A short real pipeline run exposing the trainer's and a joiner worker's metrics, for the Prometheus test.

STAND-IN until `pepnet demo` exists (see test_prometheus_live.py for how to switch): it runs the
project's real components in one process against a real broker:

* worker side (endpoint --worker-port, job pepnet-worker): the simulator's impressions and actions,
  with a few corrupted events, go through the real `EventValidator` and `PartitionJoiner`; the
  counts feed `JoinerMetrics`; joined samples are produced to the samples topic;
* trainer side (endpoint --trainer-port, job pepnet-trainer): a plain consumer (librdkafka
  statistics feed the lag gauge) cuts passes of --pass-samples samples; each is scored first
  (progressive validation), then trained with the real PEPNet `TrainingModel` and embedding table,
  then `end_pass`; the pass feeds `TrainerMetrics` and `TableMetrics` and `<run_dir>/passes.jsonl`.
  (`stream.trainer.loop.IncrementalTrainer` is not used: its `SampleReader.lag()` blocks in
  confluent-kafka's get_watermark_offsets while the reader thread is in consume(), see the report.)

Prints `ready` once both endpoints serve, `trained <passes>` at the end, then keeps the worker
endpoint up for --linger-s seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from monitoring.process_metrics import register_process_metrics
from monitoring.run_log import PassRecord, append_pass_record
from monitoring.server import start_metrics_server
from monitoring.table_metrics import TableMetrics
from monitoring.trainer_metrics import TrainerMetrics
from stream.batching import SampleBatcher
from stream.config import PipelineConfig, load_config
from stream.events import Action, Impression, encode, sample_from_dict
from stream.joiner.partition_joiner import PartitionJoiner
from stream.kafka.client_config import consumer_config, producer_config
from stream.kafka.topics import create_topics
from stream.simulator.generator import EventSimulator
from stream.trainer.progressive_validation import progressive_metrics
from stream.trainer.training_model import TrainingModel
from stream.validation import EventValidator, InvalidEvent

# Join outcome counters of PartitionJoiner and the JoinerMetrics counter each one feeds.
JOIN_COUNTS = {
    "joined_actions": "joined_actions",
    "late_actions": "late_actions",
    "orphan_actions": "orphan_actions",
    "prelabelled": "prelabelled_samples",
}
CORRUPTIONS = {
    "bad_json": lambda raw: raw[: len(raw) // 2],
    "unknown_domain": lambda raw: raw.replace(b'"domain": "', b'"domain": "nowhere'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--trainer-port", type=int, required=True)
    parser.add_argument("--worker-port", type=int, required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--impressions", type=int, default=6000)
    parser.add_argument("--pass-samples", type=int, default=1000)
    parser.add_argument("--corrupt-every", type=int, default=97, help="corrupt one event in this many")
    parser.add_argument("--linger-s", type=float, default=30.0)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    prefix = f"pepnet-live-{uuid.uuid4().hex[:8]}"
    topics = {
        role: {"name": f"{prefix}.{role}", "partitions": 2 if role != "dead_letters" else 1}
        for role in ("impressions", "actions", "samples", "samples_replay", "dead_letters")
    }
    config = load_config(
        overrides={
            "kafka": {"bootstrap": args.bootstrap, "topics": topics},
            "monitoring": {"trainer_port": args.trainer_port, "kafka_stats_interval_ms": 500},
            "trainer": {"pass_samples": args.pass_samples, "consumer_group": prefix},
            "run_dir": args.run_dir,
        }
    )
    create_topics(config.kafka)
    registry = CollectorRegistry()
    register_process_metrics(registry)
    joiner_metrics = JoinerMetrics(registry, dead_letter_reasons=sorted(CORRUPTIONS))
    worker_server = start_metrics_server(registry, config.monitoring.host, args.worker_port)
    print("ready", flush=True)

    samples = join_simulated_events(config, joiner_metrics, args.impressions, args.corrupt_every)
    producer = Producer(producer_config(config.kafka))
    for sample in samples:
        producer.produce(config.kafka.topics.samples.name, encode(sample), key=str(sample.impression.user_id))
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("samples not delivered within 60 s")

    passes = train_passes(config, Path(args.run_dir), args.pass_samples)
    print(f"trained {passes}", flush=True)
    time.sleep(args.linger_s)
    worker_server.close()
    return 0


def read_pass(consumer: Consumer, pass_samples: int, idle_s: float) -> tuple[list[bytes], dict[int, int]]:
    """Up to `pass_samples` message values, fewer once nothing arrived for `idle_s` (end of the topic)."""
    values: list[bytes] = []
    next_offsets: dict[int, int] = {}
    idle_since = time.monotonic()
    while len(values) < pass_samples and time.monotonic() - idle_since < idle_s:
        messages = [m for m in consumer.consume(pass_samples - len(values), 0.5) if not m.error()]
        if messages:
            idle_since = time.monotonic()
        for message in messages:
            values.append(message.value())
            next_offsets[message.partition()] = message.offset() + 1
    return values, next_offsets


def total_lag(consumer: Consumer, topic: str, partitions: int) -> int:
    """Messages between the consumer's positions and the cached high watermarks."""
    lag = 0
    for position in consumer.position([TopicPartition(topic, p) for p in range(partitions)]):
        _, high = consumer.get_watermark_offsets(position, cached=True)
        lag += max(0, high - max(position.offset, 0)) if high >= 0 else 0
    return lag


def train_passes(config: PipelineConfig, run_dir: Path, pass_samples: int) -> int:
    """Consume the samples topic in passes: score, train, end the pass, publish. Returns the passes run."""
    registry = CollectorRegistry()
    register_process_metrics(registry)
    trainer_metrics = TrainerMetrics(registry)
    table_metrics = TableMetrics(registry)
    server = start_metrics_server(registry, config.monitoring.host, config.monitoring.trainer_port)
    topic = config.kafka.topics.samples
    consumer = Consumer(
        consumer_config(
            config.kafka,
            group_id=config.trainer.consumer_group,
            overrides={
                "statistics.interval.ms": config.monitoring.kafka_stats_interval_ms,
                "stats_cb": trainer_metrics.update_consumer_lag,
            },
        )
    )
    consumer.assign([TopicPartition(topic.name, p, 0) for p in range(topic.partitions)])
    model = TrainingModel.fresh(config.schema, config.model, config.embedding_store)
    batcher = SampleBatcher(config.schema)
    tasks, pass_index = config.schema.task_names, 0
    while True:
        values, next_offsets = read_pass(consumer, pass_samples, idle_s=3.0)
        if not values:
            break
        started = time.perf_counter()
        batch = batcher.build([sample_from_dict(json.loads(value)) for value in values])
        validation = progressive_metrics(batch, model.step.score(batch), tasks, config.schema.domains)
        results = [model.step.step(batch.slice(i, i + 256)) for i in range(0, len(batch), 256)]
        report = model.table.end_pass(pass_index, int(batch.event_time_ms.max()))
        duration = time.perf_counter() - started
        stats = model.table.stats()
        record = PassRecord(
            pass_index=pass_index,
            samples=len(batch),
            duration_s=duration,
            samples_per_s=len(batch) / duration,
            loss={t: float(np.nanmean([r.task_loss[t] for r in results])) for t in tasks},
            auc=validation.auc,
            auc_by_domain=validation.auc_by_domain,
            logloss=validation.logloss,
            logloss_by_domain=validation.logloss_by_domain,
            table_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            table_rows=stats.rows,
            evictions=report.evictions,
            consumer_lag=total_lag(consumer, topic.name, topic.partitions),
            event_time_min_ms=int(batch.event_time_ms.min()),
            event_time_max_ms=int(batch.event_time_ms.max()),
        )
        append_pass_record(run_dir, record)
        trainer_metrics.record_pass(record)
        table_metrics.update(
            bytes_by_component=stats.bytes_by_component,
            used_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            rows_by_feature=stats.rows_per_feature,
            evictions_by_reason=stats.evictions,
            admissions=stats.admissions,
            rejections_by_reason=stats.rejections,
        )
        model.table.save_state(run_dir / "table_state")
        trainer_metrics.record_checkpoint()
        # librdkafka's consumer_lag is measured from the committed offsets
        consumer.commit(offsets=[TopicPartition(topic.name, p, o) for p, o in next_offsets.items()], asynchronous=False)
        pass_index += 1
    consumer.close()
    server.close()
    return pass_index


def join_simulated_events(config, metrics: JoinerMetrics, impressions: int, corrupt_every: int) -> list:
    """Validate and join the simulator's events in event time, feeding the joiner metrics as they go."""
    simulator = EventSimulator(config.simulator, config.schema)
    validator = EventValidator(config.schema, config.joiner.validation)
    joiner = PartitionJoiner(0, config.schema.task_names, config.joiner.window_ms, config.joiner.grace_ms)
    samples = []
    corruptions = list(CORRUPTIONS.values())
    for offset, event in enumerate(simulator.events(impressions)):
        raw = encode(event)
        if isinstance(event, Impression) and offset % corrupt_every == 0:
            raw = corruptions[offset % len(corruptions)](raw)
        try:
            if isinstance(event, Impression):
                joiner.on_impression(validator.impression(raw), offset)
                metrics.impressions_consumed.inc()
            else:
                assert isinstance(event, Action)
                joiner.on_action(validator.action(raw), offset)
                metrics.actions_consumed.inc()
        except InvalidEvent as error:
            metrics.dead_letter(error.code)
        samples.extend(publish_join_output(joiner, metrics))
    joiner.close_all()
    samples.extend(publish_join_output(joiner, metrics))
    return samples


def publish_join_output(joiner: PartitionJoiner, metrics: JoinerMetrics) -> list:
    output = joiner.drain()
    for count_name, metric_name in JOIN_COUNTS.items():
        if output.counts.get(count_name):
            getattr(metrics, metric_name).inc(output.counts[count_name])
    metrics.samples_emitted.inc(len(output.emitted))
    metrics.pending_impressions.set(joiner.pending_count)
    return [emitted.sample for emitted in output.emitted]


if __name__ == "__main__":
    sys.exit(main())
