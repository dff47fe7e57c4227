"""The run log: one JSON line per finished training pass in `<run_dir>/passes.jsonl`."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

PASSES_FILE_NAME = "passes.jsonl"


@dataclass
class PassRecord:
    """What one finished pass did; written by the trainer, read by `pepnet report`.

    Metrics are those of the pass's progressive validation (scored before training on it).
    An undefined value (e.g. AUC of a task with a single class in the pass) is NaN; it is stored
    as JSON `null`.

    Attributes:
        pass_index: 0-based index of the pass.
        samples: samples trained in the pass.
        duration_s: wall-clock duration of the pass in seconds.
        samples_per_s: samples / duration_s.
        loss: mean training loss (binary cross-entropy) per task.
        auc: progressive AUC per task, all domains together.
        auc_by_domain: progressive AUC per task, then per domain.
        logloss: progressive logloss per task.
        table_bytes: bytes accounted by the embedding table at pass end.
        budget_bytes: the table's byte budget.
        table_rows: rows in the embedding table at pass end.
        evictions: rows removed during this pass, by reason (not cumulative).
        consumer_lag: total consumer lag of the samples topic at pass end, in messages.
        event_time_min_ms: smallest event time of the pass's samples (ms since the epoch).
        event_time_max_ms: largest event time of the pass's samples (ms since the epoch).
        logloss_by_domain: progressive logloss per task, then per domain.
        observed: samples with an observed label per task (the progressive metrics' sample size).
        positives: positive labels per task among them.
        positives_by_domain: positive labels per task, then per domain.
        logloss_stderr: standard error of the progressive logloss per task.
    """

    pass_index: int
    samples: int
    duration_s: float
    samples_per_s: float
    loss: dict[str, float]
    auc: dict[str, float]
    auc_by_domain: dict[str, dict[str, float]]
    logloss: dict[str, float]
    table_bytes: int
    budget_bytes: int
    table_rows: int
    evictions: dict[str, int]
    consumer_lag: int
    event_time_min_ms: int
    event_time_max_ms: int
    logloss_by_domain: dict[str, dict[str, float]] = field(default_factory=dict)
    observed: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    positives_by_domain: dict[str, dict[str, int]] = field(default_factory=dict)
    logloss_stderr: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pass_index", "samples", "table_bytes", "budget_bytes", "table_rows"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {self.duration_s}")
        if self.event_time_max_ms < self.event_time_min_ms:
            raise ValueError(
                f"event_time_max_ms must be >= event_time_min_ms ({self.event_time_min_ms}), "
                f"got {self.event_time_max_ms}"
            )

    def to_json(self) -> str:
        """One JSON line (no trailing newline); NaN and infinities become null."""
        return json.dumps(_to_plain(asdict(self)), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> PassRecord:
        """Parse one line written by `to_json`; ValueError names the missing or bad field."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field")
        hints = get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for name, spec in known.items():
            if name not in data:
                if spec.default is not MISSING or spec.default_factory is not MISSING:
                    continue
                raise ValueError(f"{name}: missing field")
            value = _none_to_nan(data[name])
            _check_type(name, value, hints[name])
            kwargs[name] = value
        return cls(**kwargs)


def _check_type(name: str, value: Any, hint: Any) -> None:
    """Raise ValueError naming `name` unless `value` (parsed JSON) matches `hint`."""
    origin = get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object, got {type(value).__name__}")
        value_hint = get_args(hint)[1]
        for key, item in value.items():
            _check_type(f"{name}.{key}", item, value_hint)
        return
    accepted: tuple[type, ...] = (int, float) if hint is float else (hint,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"{name}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


def _to_plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars become Python numbers, NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, int | float):
        value = value.item()  # numpy scalars (int64 counts, float32 metrics) are not JSON serialisable
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _none_to_nan(v) for k, v in value.items()}
    return value


def passes_path(run_dir: str | os.PathLike[str]) -> Path:
    """Path of the run log inside `run_dir`."""
    return Path(run_dir) / PASSES_FILE_NAME


def append_pass_record(run_dir: str | os.PathLike[str], record: PassRecord) -> Path:
    """Append `record` as one line to `<run_dir>/passes.jsonl`, flushed and fsynced before returning.

    A single `write` of a whole line in append mode, then fsync: after a crash the file holds
    every acknowledged record and at most one truncated last line, which `read_pass_records` skips.
    """
    path = passes_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = record.to_json() + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def read_pass_records(run_dir: str | os.PathLike[str]) -> list[PassRecord]:
    """All pass records of a run, sorted by pass index.

    A pass logged twice (the trainer re-ran it after a crash before its checkpoint) keeps its
    last record. A truncated final line (crash mid-append) is skipped with a warning; a bad line
    anywhere else raises ValueError naming the file, line and reason.
    """
    path = passes_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no run log at {path}")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    last_is_partial = not text.endswith("\n")
    by_pass: dict[int, PassRecord] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = PassRecord.from_json(line)
        except (ValueError, TypeError) as error:
            if last_is_partial and number == len(lines):
                warnings.warn(f"{path}:{number}: skipping truncated last line ({error})", stacklevel=2)
                continue
            raise ValueError(f"{path}:{number}: {error}") from error
        by_pass[record.pass_index] = record
    return [by_pass[index] for index in sorted(by_pass)]
