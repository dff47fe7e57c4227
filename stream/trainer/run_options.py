"""What a trainer run is asked to do (:class:`RunOptions`) and what it did (:class:`RunSummary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitoring.run_log import PassRecord
from stream.trainer.checkpoint_writer import PersistTiming, WriteTiming
from stream.trainer.manifest import PassManifest


@dataclass
class RunOptions:
    """When a run stops and where it reads.

    ``max_passes``: stop once this many passes exist in total (absolute, so a restart stops at the
    same pass). ``stop_at_end``: read up to the end offsets captured at start and close a final
    partial pass. ``start_offsets``/``end_offsets`` override the checkpoint's offsets (replay).
    ``idle_timeout_s``: stop when no message arrived for this long (0 = never).
    """

    max_passes: int = 0
    stop_at_end: bool = False
    start_offsets: dict[int, int] | None = None
    end_offsets: dict[int, int] | None = None
    group_id: str | None = None
    idle_timeout_s: float = 0.0
    on_pass: Callable[[PassRecord, PassManifest], None] | None = None
    # The caller closes the metrics endpoint (close_metrics) instead of the run: a short run's
    # final values stay up for a last scrape.
    keep_metrics_endpoint: bool = False


@dataclass
class RunSummary:
    """What a run did."""

    passes: list[PassRecord] = field(default_factory=list)
    manifests: list[PassManifest] = field(default_factory=list)
    resumed_from_pass: int | None = None
    next_pass: int = 0
    invalid_messages: int = 0
    persist: list[PersistTiming] = field(default_factory=list)
    writes: list[WriteTiming] = field(default_factory=list)
    stopped: bool = False  # ended by stop() (SIGTERM), after checkpointing the pass in training
