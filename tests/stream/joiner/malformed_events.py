"""Malformed variants of valid events, one per kind of defect, with the reason code each must get."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from stream.events.formats import Action, Impression

FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01

Corruption = Callable[[dict[str, Any]], Any]  # mutates/returns the event dict (or bytes)


def _set(field: str, value: Any) -> Corruption:
    def corrupt(d: dict[str, Any]) -> dict[str, Any]:
        d[field] = value
        return d

    return corrupt


def _drop(field: str) -> Corruption:
    def corrupt(d: dict[str, Any]) -> dict[str, Any]:
        del d[field]
        return d

    return corrupt


def _dense_nan(d: dict[str, Any]) -> bytes:
    d["dense"] = {"video_duration_s": float("nan")}
    return json.dumps(d).encode()  # Python writes NaN, which json.loads accepts


def _oversized(d: dict[str, Any]) -> dict[str, Any]:
    d["sparse"] = {"video_type": "x" * 100} | {f"pad{i}": i for i in range(3000)}
    return d


# kind -> (applies to impressions?, applies to actions?, corruption, expected reason code)
KINDS: dict[str, tuple[bool, bool, Corruption, str]] = {
    "bad_json": (True, True, lambda d: b'{"impression_id": "x", ', "bad_json"),
    "not_utf8": (True, True, lambda d: b"\xff\xfe\x00garbage", "bad_json"),
    "not_object": (True, True, lambda d: b"[1, 2, 3]", "not_object"),
    "missing_field": (True, True, _drop("event_time_ms"), "missing_field"),
    "wrong_type": (True, True, _set("user_id", "seven"), "wrong_type"),
    "bool_id": (True, False, _set("item_id", True), "wrong_type"),
    "negative_id": (True, True, _set("user_id", -5), "id_out_of_range"),
    "huge_id": (True, False, _set("author_id", 2**64), "id_out_of_range"),
    "future_timestamp": (True, True, _set("event_time_ms", FAR_FUTURE_MS), "future_timestamp"),
    "negative_timestamp": (True, True, _set("event_time_ms", -1), "negative_timestamp"),
    "nan_dense": (True, False, _dense_nan, "non_finite"),
    "unknown_domain": (True, False, _set("domain", "tab99"), "unknown_domain"),
    "unknown_task": (False, True, _set("action", "purchase"), "unknown_task"),
    "unknown_sparse": (True, False, _set("sparse", {"no_such_feature": 1}), "unknown_feature"),
    "bad_label": (True, False, _set("labels", {"click": 2}), "bad_label"),
    "unknown_field": (True, True, _set("extra", 1), "unknown_field"),
    "empty_id": (True, True, _set("impression_id", ""), "bad_id"),
    "oversized": (True, False, _oversized, "oversized"),
}


def corrupt(event: Impression | Action, kind: str) -> bytes:
    """The wire bytes of ``event`` with the defect ``kind``."""
    d = asdict(event)
    out = KINDS[kind][2](d)
    return out if isinstance(out, bytes) else json.dumps(out).encode()


def kinds_for(event: Impression | Action) -> list[str]:
    """The defect kinds that apply to this kind of event."""
    index = 0 if isinstance(event, Impression) else 1
    return [k for k, v in KINDS.items() if v[index]]
