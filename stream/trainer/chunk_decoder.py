"""Decode the JSON messages of one partition chunk into a :class:`SampleBatch`, one row per valid message.

Used on the reader thread (``trainer.decoder_processes: 0``) and, unchanged, inside each decoder
process (:mod:`stream.trainer.decoder_processes`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import numpy as np

from pepnet.batch import SampleBatch
from stream.events.batching import SampleBatcher
from stream.events.formats import LabelledSample, sample_from_dict

log = logging.getLogger(__name__)

# Untyped msgspec JSON: the same dicts as json.loads, in about half the time of one json.loads
# over the whole group (which let a message hold two samples).
_JSON = msgspec.json.Decoder()

# What a message that is not a sample of the schema raises while decoded and batched. (An integer
# beyond 64 bits raises OverflowError when laid out as int64 columns.)
_NOT_A_SAMPLE = (ValueError, KeyError, TypeError, AttributeError, OverflowError)


class ChunkDecoder:
    """JSON messages of one partition -> SampleBatch; undecodable messages are skipped and counted.

    Each message is decoded on its own: a message is one sample or invalid. (Parsing a group of
    messages joined into one JSON array let a message ``<sample>,<sample>`` smuggle in an extra
    row, which shifted every later row against its offset.) ``on_invalid`` is called once per
    invalid message (a metric).
    """

    def __init__(self, batcher: SampleBatcher, on_invalid: Callable[[], object] | None = None) -> None:
        self.batcher = batcher
        self.invalid = 0
        self.on_invalid = on_invalid

    def decode(self, values: list[bytes | None]) -> tuple[np.ndarray, SampleBatch | None]:
        """(indices of the decoded messages, their batch, one row each, or None if none decoded)."""
        kept, samples = [], []
        for i, value in enumerate(values):
            try:
                samples.append(sample_from_dict(_JSON.decode(value)))  # type: ignore[arg-type]
            except _NOT_A_SAMPLE as error:
                self._skip(error)
                continue
            kept.append(i)
        if not samples:
            return np.empty(0, dtype=np.int64), None
        try:
            return np.asarray(kept, dtype=np.int64), self.batcher.build(samples)
        except _NOT_A_SAMPLE:
            return self._build_one_by_one(kept, samples)

    def _build_one_by_one(
        self, kept: list[int], samples: list[LabelledSample]
    ) -> tuple[np.ndarray, SampleBatch | None]:
        """Find the samples that decode as JSON but do not fit the schema (wrong types, shapes)."""
        good_rows, good = [], []
        for i, sample in zip(kept, samples, strict=True):
            try:
                self.batcher.build([sample])
            except _NOT_A_SAMPLE as error:
                self._skip(error)
                continue
            good_rows.append(i)
            good.append(sample)
        if not good:
            return np.empty(0, dtype=np.int64), None
        return np.asarray(good_rows, dtype=np.int64), self.batcher.build(good)

    def _skip(self, error: Exception) -> None:
        self.invalid += 1
        if self.on_invalid is not None:
            self.on_invalid()
        log.warning("skipping an undecodable sample message (%s: %s)", type(error).__name__, str(error)[:200])


def empty_batch() -> SampleBatch:
    """A zero-row batch: carries only the read position of a group of undecodable messages."""
    return SampleBatch(
        keys=np.zeros((0, 0), dtype=np.uint64),
        key_mask=np.zeros((0, 0), dtype=bool),
        domain=np.zeros(0, dtype=np.int64),
        dense=np.zeros((0, 0), dtype=np.float32),
        labels=np.zeros((0, 0), dtype=np.float32),
        label_mask=np.zeros((0, 0), dtype=bool),
        user_id=np.zeros(0, dtype=np.int64),
        event_time_ms=np.zeros(0, dtype=np.int64),
        sample_id=[],
    )
