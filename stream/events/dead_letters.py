"""Dead letters: invalid input events, kept byte for byte with where they came from and why.

Wire format of the dead-letter topic (``kafka.topics.dead_letters``): the message *value* is the
original message value, unchanged (it may not even be UTF-8); the message *key* is the original
key; the headers carry the rest (all UTF-8 strings):

* ``pepnet.reason``: reason code (``stream.events.validation.REASONS``), the metric label
* ``pepnet.detail``: human text, ``<field>: <what is wrong>``
* ``pepnet.source.topic`` / ``pepnet.source.partition`` / ``pepnet.source.offset``
* ``pepnet.source.timestamp_ms``: the original message's Kafka timestamp (ms)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADER_REASON = "pepnet.reason"
HEADER_DETAIL = "pepnet.detail"
HEADER_TOPIC = "pepnet.source.topic"
HEADER_PARTITION = "pepnet.source.partition"
HEADER_OFFSET = "pepnet.source.offset"
HEADER_TIMESTAMP = "pepnet.source.timestamp_ms"
_MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message: its bytes, its origin (topic, partition, offset) and the reason."""

    value: bytes
    key: bytes | None
    reason: str  # reason code
    detail: str  # "<field>: <explanation>"
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int = -1

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead-letter message."""
        return [
            (HEADER_REASON, self.reason.encode()),
            (HEADER_DETAIL, self.detail[:_MAX_DETAIL_CHARS].encode()),
            (HEADER_TOPIC, self.source_topic.encode()),
            (HEADER_PARTITION, str(self.source_partition).encode()),
            (HEADER_OFFSET, str(self.source_offset).encode()),
            (HEADER_TIMESTAMP, str(self.source_timestamp_ms).encode()),
        ]

    @classmethod
    def from_message(
        cls, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None
    ) -> DeadLetter:
        """Read a dead letter back from a consumed message (raises ValueError if a header is missing)."""
        h = {name: data.decode("utf-8", "replace") for name, data in headers or ()}
        try:
            return cls(
                value=value or b"",
                key=key,
                reason=h[HEADER_REASON],
                detail=h[HEADER_DETAIL],
                source_topic=h[HEADER_TOPIC],
                source_partition=int(h[HEADER_PARTITION]),
                source_offset=int(h[HEADER_OFFSET]),
                source_timestamp_ms=int(h.get(HEADER_TIMESTAMP, "-1")),
            )
        except KeyError as e:
            raise ValueError(f"headers: dead-letter header {e.args[0]} is missing") from None
