"""The wire format between the sample reader and its decoder processes: bytes and arrays, no pickle.

Raw message values go to a decoder process and the decoded chunk comes back over a
:class:`multiprocessing.connection.Connection` as frames (``send_bytes``/``recv_bytes``):

* first, once: the feature schema as JSON (the fields of :class:`~pepnet.schema.FeatureSchema`);
* request, two frames: the values' lengths (int64 little-endian, -1 = a message without a value),
  then the values concatenated;
* response, two frames: a JSON header (rows kept, invalid count, sample ids, and per array its
  field, dtype, shape and byte offset), then the arrays' bytes at 16-byte aligned offsets,
  received straight into one writable buffer that the arrays view (no further copy);
* failure, one frame: a JSON header ``{"error": "<one line>"}``.

Nothing here unpickles: a message value is data only, whatever it holds.
"""

from __future__ import annotations

import dataclasses
import math
from multiprocessing.connection import Connection

import msgspec
import numpy as np

from pepnet.batch import SampleBatch
from pepnet.schema import FeatureSchema
from stream.config.loader import build_dataclass

_ARRAY_FIELDS = [f.name for f in dataclasses.fields(SampleBatch) if f.name != "sample_id"]
_ALIGN = 16
_NO_VALUE = -1


class DecoderFailed(Exception):
    """A decoder process reported a failure (its one-line description is the message)."""


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    kept: int = 0
    invalid: int = 0
    sample_id: list[str] = []
    arrays: list[tuple[str, str, list[int], int]] = []  # field ("kept" or a SampleBatch field), dtype, shape, offset
    nbytes: int = 0
    error: str | None = None


_HEADER = msgspec.json.Decoder(_Header)
_ENCODER = msgspec.json.Encoder()


def send_schema(connection: Connection, schema: FeatureSchema) -> None:
    """Send the feature schema the decoder process decodes for (its first frame)."""
    connection.send_bytes(_ENCODER.encode(dataclasses.asdict(schema)))


def receive_schema(connection: Connection) -> FeatureSchema:
    """Receive the schema sent by :func:`send_schema`; EOFError when the other end closed first."""
    return build_dataclass(FeatureSchema, msgspec.json.decode(connection.recv_bytes()), "schema")


def send_values(connection: Connection, values: list[bytes | None]) -> None:
    """Send one chunk's raw message values (a request)."""
    lengths = np.fromiter((_NO_VALUE if v is None else len(v) for v in values), dtype="<i8", count=len(values))
    connection.send_bytes(lengths.tobytes())
    connection.send_bytes(b"".join(v for v in values if v is not None))


def receive_values(connection: Connection) -> list[bytes | None]:
    """Receive a request sent by :func:`send_values`; ValueError if its two frames disagree.
    EOFError when the other end closed the connection."""
    lengths = np.frombuffer(connection.recv_bytes(), dtype="<i8")
    payload = connection.recv_bytes()
    if (lengths < _NO_VALUE).any() or int(lengths[lengths > 0].sum()) != len(payload):
        raise ValueError(f"a request's {len(lengths)} value lengths do not add up to its {len(payload)} bytes")
    values: list[bytes | None] = []
    start = 0
    for length in lengths.tolist():
        if length == _NO_VALUE:
            values.append(None)
            continue
        values.append(payload[start : start + length])
        start += length
    return values


def send_decoded(connection: Connection, kept: np.ndarray, batch: SampleBatch | None, invalid: int) -> None:
    """Send a decoded chunk (a response): the indices of the kept messages, their batch (None if
    no message decoded) and how many messages were invalid."""
    arrays = [("kept", np.ascontiguousarray(kept))]
    if batch is not None:
        arrays += [(name, np.ascontiguousarray(getattr(batch, name))) for name in _ARRAY_FIELDS]
    layout, offset = [], 0
    for name, array in arrays:
        layout.append((name, array.dtype.str, list(array.shape), offset))
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    payload = bytearray(offset)
    for (_, array), (_, _, shape, start) in zip(arrays, layout, strict=True):
        np.frombuffer(payload, dtype=array.dtype, count=array.size, offset=start).reshape(shape)[...] = array
    header = _Header(
        kept=len(kept), invalid=invalid, sample_id=batch.sample_id if batch is not None else [], arrays=layout,
        nbytes=offset,
    )  # fmt: skip
    connection.send_bytes(_ENCODER.encode(header))
    connection.send_bytes(payload)


def send_failure(connection: Connection, error: str) -> None:
    """Report a failure of the decoder process (one line)."""
    connection.send_bytes(_ENCODER.encode(_Header(error=error)))


def receive_decoded(connection: Connection) -> tuple[np.ndarray, SampleBatch | None, int]:
    """(kept indices, batch or None, invalid count) of a response; :class:`DecoderFailed` for a
    failure; EOFError when the decoder process closed its end (it ended)."""
    header = _HEADER.decode(connection.recv_bytes())
    if header.error is not None:
        raise DecoderFailed(header.error)
    payload = bytearray(header.nbytes)
    connection.recv_bytes_into(payload)
    arrays = {
        name: np.frombuffer(payload, dtype=np.dtype(dtype), count=math.prod(shape), offset=start).reshape(shape)
        for name, dtype, shape, start in header.arrays
    }
    kept = arrays.pop("kept")
    if not arrays:
        return kept, None, header.invalid
    return kept, SampleBatch(**arrays, sample_id=header.sample_id), header.invalid
