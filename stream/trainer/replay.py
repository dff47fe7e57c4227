"""Backfill: train on a time range or an offset range of the samples topic, then stop.

The replay reads with a consumer group of its own (the live trainer's group is untouched),
starts at the offsets of the range's start (``offsets_for_times`` for a time), stops at the end
offsets captured when it starts, and trains into its own run directory (fresh, or continuing the
model of the checkpoint found there). Passes are cut by the same content-only rules as the live
trainer, so a range starting on a pass boundary (with ``trainer.pass_event_time_ms``: any
multiple of it) reproduces the live run's pass manifests over that range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException, TopicPartition

from monitoring.run_log import PassRecord
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.kafka.clients import new_consumer
from stream.kafka.config import KafkaConfig
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.loop import IncrementalTrainer, RunOptions, RunSummary, TrainerPaths
from stream.trainer.manifest import PassManifest
from stream.trainer.sample_reader import partition_offsets


@dataclass
class ReplayRange:
    """What to replay: event times (ms, Kafka message timestamps) and/or offsets per partition.

    Start: ``from_offsets`` if given, else the first offset at or after ``from_time_ms``, else the
    beginning. End (exclusive): ``to_offsets``, else the first offset at or after ``to_time_ms``,
    else the end of every partition when the replay starts.
    """

    from_time_ms: int | None = None
    to_time_ms: int | None = None
    from_offsets: dict[int, int] | None = None
    to_offsets: dict[int, int] | None = None

    def __post_init__(self) -> None:
        if self.from_time_ms is not None and self.to_time_ms is not None and self.to_time_ms < self.from_time_ms:
            raise ValueError(f"to_time_ms must be >= from_time_ms ({self.from_time_ms}), got {self.to_time_ms}")


def offsets_for_time(kafka: KafkaConfig, topic: str, time_ms: int, timeout_s: float = 10.0) -> dict[int, int]:
    """Partition -> first offset whose message timestamp is >= ``time_ms`` (ms; the end if none)."""
    watermarks = partition_offsets(kafka, topic, timeout_s)
    consumer = new_consumer(
        kafka, "pepnet-offsets-probe", name="replay offsets probe", overrides={"enable.auto.commit": False}
    )
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, p, time_ms) for p in watermarks], timeout=timeout_s)
    except KafkaException as error:
        raise UserError(f"cannot look up offsets for time {time_ms} in {topic}: {error}") from None
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else watermarks[tp.partition][1] for tp in found}


def resolve_range(kafka: KafkaConfig, topic: str, span: ReplayRange) -> tuple[dict[int, int], dict[int, int]]:
    """(start offsets, end offsets) of every partition for ``span``, captured now."""
    watermarks = partition_offsets(kafka, topic)
    low = {p: first for p, (first, _end) in watermarks.items()}
    high = {p: end for p, (_first, end) in watermarks.items()}

    def edge(offsets: dict[int, int] | None, time_ms: int | None, default: dict[int, int]) -> dict[int, int]:
        """One end of the range: given offsets (``default`` for partitions left out), a time, or ``default``."""
        if offsets is not None:
            return {p: offsets.get(p, o) for p, o in default.items()}
        if time_ms is not None:
            return offsets_for_time(kafka, topic, time_ms)
        return dict(default)

    start = edge(span.from_offsets, span.from_time_ms, low)
    end = edge(span.to_offsets, span.to_time_ms, high)
    return start, {p: max(end[p], start[p]) for p in watermarks}


def replay(
    config: PipelineConfig,
    run_dir: str | Path,
    span: ReplayRange,
    continue_model: bool = False,
    group_id: str | None = None,
    progress: bool = True,
) -> RunSummary:
    """Train on ``span`` of the samples topic into ``run_dir`` (see the module docstring)."""
    paths = TrainerPaths.from_config(config, str(run_dir))
    has_checkpoint = CheckpointStore(paths.checkpoint_dir, config.trainer.keep_checkpoint_chains).list()
    if has_checkpoint and not continue_model:
        raise UserError(
            f"{paths.checkpoint_dir} already holds checkpoints; pass --continue to train on from that model "
            "or choose an empty --run-dir"
        )
    topic = config.kafka.topics.samples.name
    start, end = resolve_range(config.kafka, topic, span)
    total = sum(end[p] - start[p] for p in start)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="msg", desc="replay", dynamic_ncols=True)

    def on_pass(_record: PassRecord, manifest: PassManifest) -> None:
        if bar is not None:
            bar.update(sum(r.end_offset - r.start_offset for r in manifest.ranges))

    trainer = IncrementalTrainer(config, paths, topic)
    try:
        return trainer.run(
            RunOptions(
                start_offsets=start,
                end_offsets=end,
                group_id=group_id or f"{config.trainer.consumer_group}-replay",
                on_pass=on_pass,
            )
        )
    finally:
        if bar is not None:
            bar.close()
