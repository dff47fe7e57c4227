"""Read the samples topic with batched ``consume()``; decode it off the training thread.

The reader thread assigns explicit partitions at explicit offsets (from the checkpoint: the
consumer group's committed offsets are never used to position), consumes up to
``consume_messages`` per call and groups the messages by partition. Each group (a chunk) is
decoded, one message one sample, into a :class:`SampleBatch` by
:class:`~stream.trainer.chunk_decoder.ChunkDecoder`: in ``decoder_processes`` separate processes
(:mod:`stream.trainer.decoder_processes`; the default, 1), so that decoding never holds the
training process's GIL, or on the reader thread itself when it is 0. Decoded chunks come back in
the order they were read and wait on a bounded queue; training takes them off it, so Kafka I/O
(librdkafka's own threads) and decoding overlap with the torch work.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from pepnet.batch import SampleBatch
from stream.config.errors import UserError
from stream.events.batching import SampleBatcher
from stream.kafka.clients import check_reachable, new_consumer
from stream.kafka.config import KafkaConfig
from stream.trainer.chunk_decoder import ChunkDecoder, empty_batch
from stream.trainer.config import TrainerConfig
from stream.trainer.decoder_processes import DecoderProcesses
from stream.trainer.pass_assembler import DecodedChunk

log = logging.getLogger(__name__)


@dataclass
class ReaderSettings:
    """How the reader consumes: messages per ``consume()``, wait per call (ms), chunks queued ahead,
    and the processes that decode them (0 = on the reader thread)."""

    consume_messages: int = 2000
    consume_timeout_ms: int = 100
    queue_chunks: int = 32
    decoder_processes: int = 1

    @staticmethod
    def of(trainer: TrainerConfig) -> ReaderSettings:
        """The reader settings of the ``trainer`` config section."""
        return ReaderSettings(
            trainer.consume_messages, trainer.consume_timeout_ms, trainer.queue_chunks, trainer.decoder_processes
        )


def partition_offsets(kafka: KafkaConfig, topic: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """Partition -> (low, high) watermark offsets of ``topic``; UserError if it does not exist or
    the cluster does not answer (one line, see :func:`check_reachable`)."""
    check_reachable(kafka)
    consumer = new_consumer(
        kafka, "pepnet-offsets-probe", name="offsets probe", overrides={"enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise UserError(f"topic {topic} does not exist on {kafka.bootstrap_servers}; run `pepnet topics create`")
        watermarks = {}
        for p in sorted(info.partitions):
            watermarks[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        return watermarks
    except KafkaException as error:
        raise UserError(f"cannot read offsets of topic {topic} at {kafka.bootstrap_servers}: {error}") from None
    finally:
        consumer.close()


class SampleReader:
    """Background consumer of ``topic`` from ``start_offsets``; take chunks with :meth:`get`.

    ``end_offsets`` stops each partition there (replay / catch-up). ``stats_callback`` receives
    librdkafka's statistics JSON (consumer lag) when ``statistics_interval_ms`` > 0; ``on_invalid``
    is called for every message that is not a sample (counted in :attr:`invalid`).
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        group_id: str,
        start_offsets: dict[int, int],
        batcher: SampleBatcher,
        settings: ReaderSettings,
        end_offsets: dict[int, int] | None = None,
        stats_callback: Callable[[str], object] | None = None,
        statistics_interval_ms: int = 0,
        on_invalid: Callable[[], object] | None = None,
    ) -> None:
        overrides: dict[str, object] = {"enable.auto.commit": False}
        if stats_callback is not None and statistics_interval_ms > 0:
            overrides["statistics.interval.ms"] = statistics_interval_ms
            overrides["stats_cb"] = stats_callback
        self.topic = topic
        self.settings = settings
        self.end_offsets = dict(end_offsets) if end_offsets is not None else None
        self._batcher = batcher
        self._on_invalid = on_invalid
        self._decoder = ChunkDecoder(batcher, on_invalid) if settings.decoder_processes == 0 else None
        self._processes: DecoderProcesses | None = None
        self._invalid_decoded_elsewhere = 0  # invalid messages counted by the decoder processes
        self._consumer = new_consumer(kafka, group_id, name=f"{topic} reader", overrides=overrides)
        self._start_offsets = dict(start_offsets)
        self._read_positions = dict(start_offsets)  # next offset to read per partition (reader thread)
        self._queue: queue.Queue[DecodedChunk | BaseException] = queue.Queue(maxsize=settings.queue_chunks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-reader", daemon=True)
        self._paused: set[int] = set()
        self._wanted_paused: set[int] = set()
        self._lock = threading.Lock()
        self._pending_commit: dict[int, int] | None = None
        self._high_watermarks: dict[int, int] = {}

    def start(self) -> None:
        """Start the decoder processes (if any), assign the partitions at their start offsets and
        start the reader thread."""
        if self._decoder is None:
            self._processes = DecoderProcesses(
                self._batcher.schema, self.settings.decoder_processes, self._deliver, self._put
            )
        partitions = [TopicPartition(self.topic, p, o) for p, o in sorted(self._start_offsets.items())]
        self._consumer.assign(partitions)
        self._thread.start()

    def get(self, timeout_s: float) -> DecodedChunk | None:
        """The next decoded chunk, or None if none arrived within ``timeout_s`` seconds."""
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def set_paused(self, partitions: set[int]) -> None:
        """Stop fetching these partitions (their messages are buffered enough); resume the others."""
        with self._lock:
            self._wanted_paused = set(partitions)

    def commit(self, next_offsets: dict[int, int]) -> None:
        """Commit ``next_offsets`` to the consumer group (lag monitoring only), from the reader thread."""
        with self._lock:
            self._pending_commit = dict(next_offsets)

    def lag(self, next_offsets: dict[int, int]) -> int:
        """Messages after ``next_offsets`` up to the high watermarks last seen by the reader (no I/O)."""
        with self._lock:
            high = dict(self._high_watermarks)
        return sum(max(0, high[p] - o) for p, o in next_offsets.items() if p in high)

    @property
    def invalid(self) -> int:
        """Messages read so far that were not samples (skipped)."""
        return self._decoder.invalid if self._decoder is not None else self._invalid_decoded_elsewhere

    @property
    def decoder_pids(self) -> list[int]:
        """Process ids of the decoder processes (empty when decoding on the reader thread)."""
        return self._processes.pids if self._processes is not None else []

    def close(self) -> None:
        """Stop the reader thread (waits up to 10 s), the decoder processes and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._processes is not None:
            self._processes.close()
            self._thread.join(timeout=10)  # if it was sending to a process that had to be killed
        self._consumer.close()

    def _run(self) -> None:
        try:
            timeout_s = self.settings.consume_timeout_ms / 1000
            # librdkafka calls on this handle stay on this thread: a second thread calling into the
            # consumer while consume() waits was seen to block until the wait ends.
            while not self._stop.is_set():
                self._apply_pauses()
                self._commit_pending()
                messages = self._consumer.consume(self.settings.consume_messages, timeout_s)
                if messages:
                    self._handle(messages)
            self._commit_pending()
        except BaseException as error:  # handed to the training thread, which re-raises it
            self._put(error)

    def _commit_pending(self) -> None:
        with self._lock:
            offsets, self._pending_commit = self._pending_commit, None
        if not offsets:
            return
        try:
            # Asynchronous: a synchronous commit waits as long as the broker is away, and this thread
            # (the one that serves the consumer's callbacks) would say nothing during an outage.
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())], asynchronous=True
            )
        except KafkaException as error:
            log.warning("committing offsets for lag monitoring failed: %s", error)

    def _apply_pauses(self) -> None:
        with self._lock:
            wanted = set(self._wanted_paused)
        if self.end_offsets is not None:
            wanted |= {p for p, o in self._read_positions.items() if o >= self.end_offsets.get(p, 0)}
        pause, resume = wanted - self._paused, self._paused - wanted
        if pause:
            self._consumer.pause([TopicPartition(self.topic, p) for p in sorted(pause)])
        if resume:
            self._consumer.resume([TopicPartition(self.topic, p) for p in sorted(resume)])
        self._paused = wanted

    def _handle(self, messages: list[Message]) -> None:
        groups: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise KafkaException(error)
                log.warning("consumer error on %s: %s", self.topic, error)
                continue
            groups.setdefault(message.partition(), []).append(message)
        for partition, group in groups.items():
            offsets = np.fromiter((m.offset() for m in group), dtype=np.int64, count=len(group))
            values = [m.value() for m in group]
            next_position = int(offsets[-1]) + 1
            self._read_positions[partition] = next_position
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            with self._lock:
                self._high_watermarks[partition] = high
            if self._processes is not None:
                # Decoded chunks come back in this order, through _deliver.
                if not self._processes.submit(values, (partition, offsets, next_position), self._stop):
                    return
                continue
            assert self._decoder is not None
            kept, batch = self._decoder.decode(values)
            self._put(_chunk(partition, offsets, next_position, kept, batch))

    def _deliver(self, context: object, kept: np.ndarray, batch: SampleBatch | None, invalid: int) -> None:
        """A chunk decoded by a decoder process (on its collector thread)."""
        partition, offsets, next_position = context  # type: ignore[misc]
        self._invalid_decoded_elsewhere += invalid
        for _ in range(invalid if self._on_invalid is not None else 0):
            self._on_invalid()  # type: ignore[misc]
        self._put(_chunk(partition, offsets, next_position, kept, batch))

    def _put(self, item: DecodedChunk | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


def _chunk(
    partition: int, offsets: np.ndarray, next_position: int, kept: np.ndarray, batch: SampleBatch | None
) -> DecodedChunk:
    """The decoded chunk of a group: a group with nothing decodable still carries its read position forward."""
    return DecodedChunk(partition, offsets[kept], batch if batch is not None else empty_batch(), next_position)
