"""The trainer's first log line: what a run reads, from where, where it writes, where its metrics are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream.trainer.config import TrainerConfig


@dataclass
class RunDescription:
    """What :func:`start_line` says about a run (offsets: partition -> next offset to read)."""

    topic: str
    bootstrap: str
    group_id: str
    start: dict[int, int]
    end: dict[int, int] | None
    resumed_from: int | None
    offsets_given: bool  # the start offsets were given (replay), not read from a checkpoint
    max_passes: int
    model_dir: Path
    run_dir: Path
    metrics_url: str | None


def start_line(run: RunDescription, trainer: TrainerConfig) -> str:
    """One line: topic, partitions, group, where it resumes, pass size, outputs, metrics URL."""
    origin = f"after checkpoint of pass {run.resumed_from}" if run.resumed_from is not None else "fresh model"
    if run.offsets_given:
        origin += f", offsets {offsets_text(run.start)}"
    limit = f" up to offsets {offsets_text(run.end)}" if run.end is not None else ""
    size = f"{trainer.pass_samples} samples" + (
        f" or {trainer.pass_event_time_ms} ms of event time" if trainer.pass_event_time_ms else ""
    )
    stop = f", stopping at pass {run.max_passes}" if run.max_passes else ""
    metrics = run.metrics_url or "off (monitoring.enabled: false)"
    return (
        f"trainer: reading {run.topic} ({len(run.start)} partitions) at {run.bootstrap} "
        f"as group {run.group_id}{limit}, {origin}; passes of {size}{stop}; model -> {run.model_dir}, "
        f"run log -> {run.run_dir / 'passes.jsonl'}; metrics at {metrics}"
    )


def offsets_text(offsets: dict[int, int]) -> str:
    """``{0: 120, 1: 98}`` -> ``0:120,1:98`` (the form ``pepnet replay`` takes)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
