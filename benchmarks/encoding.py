"""Wire format of impressions: JSON (the baseline, what the pipeline uses) against a compact
schema-positional binary encoding (struct), on simulated impressions, measured in the same run.

    python benchmarks/encoding.py [--impressions 20000]

Prints bytes per impression (raw and gzip-compressed per batch, as the producer ships them),
encode and decode+validate microseconds per impression, and the ratios binary / JSON. The
binary codec is complete for the schema's features (it round-trips every impression, checked),
but it is only a candidate: it exists here to decide the format with figures.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
import time
from pathlib import Path

# benchmarks/embedding_store.py shadows the package of that name: import from the repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO_ROOT)] + [e for e in sys.path if Path(e or ".").resolve() != REPO_ROOT / "benchmarks"]

from pepnet.schema import FeatureSchema  # noqa: E402
from stream.config.pipeline import load_config  # noqa: E402
from stream.events.formats import Impression, encode  # noqa: E402
from stream.events.typed_decoder import TypedEventDecoder  # noqa: E402
from stream.events.validation import EventValidator  # noqa: E402
from stream.simulator import EventSimulator  # noqa: E402

_HEADER = struct.Struct("<qqqqB")  # user, item, author, event time ms, domain index
_INT, _STR, _LIST, _ABSENT = 0, 1, 2, 3


class PositionalBinaryCodec:
    """Features in schema order, ids and times as int64, dense values as float64."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.domains = list(schema.domains)
        self.sparse = [f.name for f in schema.sparse]
        self.dense = [f.name for f in schema.dense]
        self.dense_struct = struct.Struct(f"<{len(self.dense)}d")

    def encode(self, imp: Impression) -> bytes:
        out = bytearray()
        iid = imp.impression_id.encode()
        out += struct.pack("<B", len(iid)) + iid
        out += _HEADER.pack(imp.user_id, imp.item_id, imp.author_id, imp.event_time_ms, self.domains.index(imp.domain))
        for name in self.sparse:
            self._value(out, imp.sparse.get(name))
        out += self.dense_struct.pack(*(imp.dense.get(n, float("nan")) for n in self.dense))
        return bytes(out)

    def _value(self, out: bytearray, v: object) -> None:
        if v is None:
            out.append(_ABSENT)
        elif isinstance(v, int):
            out.append(_INT)
            out += struct.pack("<q", v)
        elif isinstance(v, str):
            data = v.encode()
            out.append(_STR)
            out += struct.pack("<B", len(data)) + data
        else:
            out.append(_LIST)
            out.append(len(v))
            for item in v:
                self._value(out, item)

    def decode(self, data: bytes) -> Impression:
        n = data[0]
        iid = data[1 : 1 + n].decode()
        pos = 1 + n
        user, item, author, t, domain = _HEADER.unpack_from(data, pos)
        pos += _HEADER.size
        sparse = {}
        for name in self.sparse:
            value, pos = self._read(data, pos)
            if value is not None:
                sparse[name] = value
        values = self.dense_struct.unpack_from(data, pos)
        dense = {k: v for k, v in zip(self.dense, values, strict=True) if v == v}
        return Impression(iid, user, item, author, self.domains[domain], t, sparse, dense)

    def _read(self, data: bytes, pos: int) -> tuple[object, int]:
        tag = data[pos]
        pos += 1
        if tag == _ABSENT:
            return None, pos
        if tag == _INT:
            return struct.unpack_from("<q", data, pos)[0], pos + 8
        if tag == _STR:
            n = data[pos]
            return data[pos + 1 : pos + 1 + n].decode(), pos + 1 + n
        items = []
        count = data[pos]
        pos += 1
        for _ in range(count):
            value, pos = self._read(data, pos)
            items.append(value)
        return items, pos


def per_item_us(fn, items: list, repeats: int = 3) -> float:
    """CPU µs per item, best of ``repeats`` passes (CPU time: the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def gzip_bytes(messages: list[bytes], batch: int = 500) -> float:
    """Mean compressed bytes per message, compressing batches as the producer does."""
    total = 0
    for i in range(0, len(messages), batch):
        total += len(gzip.compress(b"".join(messages[i : i + batch]), compresslevel=6))
    return total / len(messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=20_000)
    args = parser.parse_args()
    config = load_config(environ={})
    simulator = EventSimulator(config.simulator, config.schema)
    impressions = [e for e in simulator.events(args.impressions) if isinstance(e, Impression)]
    codec = PositionalBinaryCodec(config.schema)
    validator = EventValidator(config.schema, config.joiner.validation)

    json_messages = [encode(i) for i in impressions]
    binary_messages = [codec.encode(i) for i in impressions]
    assert all(codec.decode(b) == validator.impression(j) for b, j in zip(binary_messages, json_messages, strict=True))

    json_encode = per_item_us(encode, impressions)
    binary_encode = per_item_us(codec.encode, impressions)
    json_decode = per_item_us(validator.impression, json_messages)  # parse + full validation
    binary_decode = per_item_us(codec.decode, binary_messages)  # parse only: types are implied
    typed = TypedEventDecoder(config.schema, config.joiner.validation)  # the joiner's msgspec fast path
    keyed = [(j, i.key()) for j, i in zip(json_messages, impressions, strict=True)]  # key checked too
    typed_decode = per_item_us(lambda message: typed.impression(*message), keyed)
    json_size = sum(map(len, json_messages)) / len(json_messages)
    binary_size = sum(map(len, binary_messages)) / len(binary_messages)
    json_gz, binary_gz = gzip_bytes(json_messages), gzip_bytes(binary_messages)

    print(f"{len(impressions):,} simulated impressions")
    print(f"{'':28}{'JSON':>10}{'binary':>10}{'binary/JSON':>13}")
    print(f"{'bytes per impression':28}{json_size:>10.0f}{binary_size:>10.0f}{binary_size / json_size:>13.2f}")
    print(f"{'bytes, gzip batches of 500':28}{json_gz:>10.0f}{binary_gz:>10.0f}{binary_gz / json_gz:>13.2f}")
    print(f"{'encode us':28}{json_encode:>10.1f}{binary_encode:>10.1f}{binary_encode / json_encode:>13.2f}")
    ratio = binary_decode / json_decode
    print(f"{'decode (+validate JSON) us':28}{json_decode:>10.1f}{binary_decode:>10.1f}{ratio:>13.2f}")
    share = f"{typed_decode / json_decode:.2f} of json.loads + checks, {typed_decode / binary_decode:.2f} of binary"
    print(f"{'decode + validate, msgspec':28}{typed_decode:>10.1f} us per impression ({share})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
