"""The reader <-> decoder process wire format: values and decoded chunks cross a real pipe intact."""

from __future__ import annotations

import dataclasses
from multiprocessing import Pipe

import numpy as np
import pytest

from pepnet.batch import SampleBatch
from stream.config.pipeline import load_config
from stream.events.batching import SampleBatcher
from stream.events.formats import encode
from stream.simulator import EventSimulator
from stream.trainer.chunk_decoder import ChunkDecoder
from stream.trainer.chunk_wire import (
    DecoderFailed,
    receive_decoded,
    receive_schema,
    receive_values,
    send_decoded,
    send_failure,
    send_schema,
    send_values,
)


def assert_same_batch(a: SampleBatch, b: SampleBatch) -> None:
    for field in dataclasses.fields(SampleBatch):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if field.name == "sample_id":
            assert x == y
            continue
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), field.name


def test_the_schema_crosses_as_it_was() -> None:
    sender, receiver = Pipe()
    schema = load_config(environ={}).schema
    send_schema(sender, schema)
    assert receive_schema(receiver) == schema


def test_values_cross_as_they_were_including_missing_and_empty_ones() -> None:
    sender, receiver = Pipe()
    values = [b'{"a": 1}', None, b"", "é".encode() * 1000, None]
    send_values(sender, values)
    assert receive_values(receiver) == values


def test_a_request_whose_lengths_and_bytes_disagree_is_refused() -> None:
    sender, receiver = Pipe()
    sender.send_bytes(np.array([3, 4], dtype="<i8").tobytes())
    sender.send_bytes(b"abcdef")
    with pytest.raises(ValueError, match="2 value lengths do not add up to its 6 bytes"):
        receive_values(receiver)


def test_a_decoded_chunk_crosses_bit_for_bit_into_writable_arrays() -> None:
    config = load_config(environ={})
    samples = [s for s, _ in EventSimulator(config.simulator, config.schema).labelled_samples(40, 300_000)]
    values = [encode(s) for s in samples]
    values[3] = b"not json"
    kept, batch = ChunkDecoder(SampleBatcher(config.schema)).decode(values)
    assert batch is not None
    sender, receiver = Pipe()
    send_decoded(sender, kept, batch, 1)
    got_kept, got, invalid = receive_decoded(receiver)
    assert got_kept.tolist() == kept.tolist() and invalid == 1 and got is not None
    assert_same_batch(got, batch)
    assert all(getattr(got, f.name).flags.writeable for f in dataclasses.fields(SampleBatch) if f.name != "sample_id")


def test_a_chunk_without_samples_and_a_failure() -> None:
    sender, receiver = Pipe()
    send_decoded(sender, np.empty(0, dtype=np.int64), None, 7)
    kept, batch, invalid = receive_decoded(receiver)
    assert kept.tolist() == [] and batch is None and invalid == 7
    send_failure(sender, "MemoryError: out of memory")
    with pytest.raises(DecoderFailed, match="^MemoryError: out of memory$"):
        receive_decoded(receiver)
