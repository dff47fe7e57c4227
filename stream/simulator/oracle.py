"""Writes the ground truth of a simulated run: per impression, its labels and oracle probabilities;
or the labelled samples themselves, in the samples topic's format plus their oracle probabilities.

JSON lines, one object per impression in event-time order::

    {"impression_id": "sim7-0", "user_id": 25148, "domain": "tab0", "event_time_ms": 1700000000032,
     "labels": {"click": 0, ...}, "oracle": {"click": 0.0831, ...}}

``labels`` are the windowed labels a correct join with ``window_ms`` produces and ``oracle`` the
probability of each of them under the hidden model. :func:`write_samples_jsonl` writes the whole
sample instead (``sample_id``, ``impression``, ``labels``, ``join`` as on the samples topic) with
the same ``oracle`` field: what ``pepnet evaluate --input`` reads. Files are written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from stream.events.formats import LabelledSample, compact_json, to_dict
from stream.storage.atomic_file import atomic_text_writer


def write_oracle_jsonl(path: str | os.PathLike[str], samples: Iterable[tuple[LabelledSample, dict[str, float]]]) -> int:
    """Write ``samples`` (from ``EventSimulator.labelled_samples``) to ``path``; returns the line count."""
    count = 0
    with atomic_text_writer(path) as f:
        for sample, oracle in samples:
            imp = sample.impression
            record = {
                "impression_id": imp.impression_id,
                "user_id": imp.user_id,
                "domain": imp.domain,
                "event_time_ms": imp.event_time_ms,
                "labels": sample.labels,
                "oracle": oracle,
            }
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def write_samples_jsonl(
    path: str | os.PathLike[str], samples: Iterable[tuple[LabelledSample, dict[str, float]]]
) -> int:
    """Write ``samples`` as samples-topic JSON lines with an ``oracle`` field; returns the line count."""
    count = 0
    with atomic_text_writer(path) as f:
        for sample, oracle in samples:
            f.write(compact_json({**to_dict(sample), "oracle": oracle}).decode() + "\n")
            count += 1
    return count


def read_oracle_jsonl(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The records of a file written by :func:`write_oracle_jsonl`, keyed by impression id."""
    with open(path) as f:
        return {record["impression_id"]: record for record in map(json.loads, f)}
