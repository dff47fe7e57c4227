"""Configuration of the incremental trainer (YAML section ``trainer``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainerConfig:
    """How samples are cut into passes, trained, checkpointed and exported.

    A pass takes at most ``pass_samples`` messages, split into fixed per-partition quotas, and
    (when ``pass_event_time_ms`` > 0) only messages of one aligned event-time window
    ``[k * span, (k + 1) * span)``; both rules depend only on the topic's content, so the same
    offsets always make the same passes (restart, replay). Spans are event time (ms).
    """

    pass_samples: int = 20_000
    pass_event_time_ms: int = 0
    batch_size: int = 512
    consumer_group: str = "pepnet-trainer"
    # Where the model is exported and checkpoints are kept; empty = <run_dir>/model, <run_dir>/checkpoints.
    model_dir: str = ""
    checkpoint_dir: str = ""
    # A checkpoint holds what changed since the previous one; a full base every K passes. Chains
    # (a base and its increments) kept on disk: >= 2, so one is whole while a new base is written.
    checkpoint_base_every_passes: int = 10
    keep_checkpoint_chains: int = 2
    # Sample ids seen in this many previous passes (plus the current one) are dropped as duplicates.
    dedup_passes: int = 4
    # Messages asked for per consume() call, wait per call (ms), and decoded chunks queued ahead.
    consume_messages: int = 2000
    consume_timeout_ms: int = 100
    queue_chunks: int = 32
    # Processes decoding the messages' JSON, so that decoding never holds the training process's
    # GIL; 0 = decode on the reader thread of the training process.
    decoder_processes: int = 1
    # Bit-for-bit reproducible training: torch deterministic algorithms on one thread.
    deterministic: bool = False
    keep_exports: int = 5  # pass directories kept in model_dir (the table chain prunes itself)
    # Warm start: an exported model directory (its LATEST pass: dense weights + table) that a run
    # without a checkpoint starts from; empty = random weights and an empty table.
    init_from: str = ""

    def __post_init__(self) -> None:
        positive = ("pass_samples", "batch_size", "checkpoint_base_every_passes", "keep_exports", "consume_messages",
                    "consume_timeout_ms", "queue_chunks")  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.pass_event_time_ms < 0:
            raise ValueError(f"pass_event_time_ms must be >= 0 (0 = no time limit), got {self.pass_event_time_ms}")
        if self.decoder_processes < 0:
            raise ValueError(
                f"decoder_processes must be >= 0 (0 = decode on the reader thread), got {self.decoder_processes}"
            )
        if self.dedup_passes < 0:
            raise ValueError(f"dedup_passes must be >= 0 (0 = within the pass only), got {self.dedup_passes}")
        if self.keep_checkpoint_chains < 2:
            raise ValueError(
                f"keep_checkpoint_chains must be >= 2 (one whole chain while a base is written), "
                f"got {self.keep_checkpoint_chains}"
            )
        if not self.consumer_group:
            raise ValueError("consumer_group must be a non-empty group id")
