"""The trainer's decoder: one message is one sample or an invalid message, never more."""

from __future__ import annotations

import re

from stream.config.pipeline import load_config
from stream.events.batching import SampleBatcher
from stream.events.formats import encode
from stream.simulator import EventSimulator
from stream.trainer.chunk_decoder import ChunkDecoder


def test_a_message_holding_two_samples_is_invalid_and_never_shifts_the_rows() -> None:
    """Issue 12 case 3: a group was parsed as one JSON array, so a message ``<sample>,<sample>``
    added a row and every later row sat against the wrong offset."""
    config = load_config(environ={})
    samples = [s for s, _ in EventSimulator(config.simulator, config.schema).labelled_samples(6, 300_000)]
    values = [encode(s) for s in samples]
    decoder = ChunkDecoder(SampleBatcher(config.schema))
    group = [values[0], values[1] + b"," + values[2], values[3], None, b'{"sample_id": 1}', values[4] + b" "]
    kept, batch = decoder.decode(group)
    assert kept.tolist() == [0, 2, 5]
    assert batch is not None and batch.sample_id == [samples[0].sample_id, samples[3].sample_id, samples[4].sample_id]
    assert decoder.invalid == 3


def test_a_group_of_valid_messages_decodes_to_one_row_each_and_invalid_ones_are_reported() -> None:
    config = load_config(environ={})
    samples = [s for s, _ in EventSimulator(config.simulator, config.schema).labelled_samples(50, 300_000)]
    counted = []
    decoder = ChunkDecoder(SampleBatcher(config.schema), on_invalid=lambda: counted.append(1))
    kept, batch = decoder.decode([encode(s) for s in samples])
    assert kept.tolist() == list(range(50)) and batch is not None and batch.sample_id == [s.sample_id for s in samples]
    unknown_domain = re.sub(rb'"domain":"[^"]*"', b'"domain":"nope"', encode(samples[0]), count=1)
    kept, batch = decoder.decode([unknown_domain, encode(samples[1])])  # a sample, but not of the schema
    assert kept.tolist() == [1] and batch is not None and batch.sample_id == [samples[1].sample_id]
    assert counted == [1] and decoder.invalid == 1


def test_an_integer_beyond_64_bits_is_an_invalid_message_not_a_crash() -> None:
    """Laying such a value out as int64 columns raised OverflowError, which the decoder let through
    (the reader thread stopped and the trainer with it)."""
    config = load_config(environ={})
    samples = [s for s, _ in EventSimulator(config.simulator, config.schema).labelled_samples(3, 300_000)]
    huge = re.sub(rb'"user_id":\d+', b'"user_id":' + str(2**70).encode(), encode(samples[1]), count=1)
    decoder = ChunkDecoder(SampleBatcher(config.schema))
    kept, batch = decoder.decode([encode(samples[0]), huge, encode(samples[2])])
    assert (
        kept.tolist() == [0, 2]
        and batch is not None
        and batch.user_id.tolist() == [samples[0].impression.user_id, samples[2].impression.user_id]
    )
    assert decoder.invalid == 1
