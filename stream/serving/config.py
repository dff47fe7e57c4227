"""Configuration of ``pepnet serve`` (YAML section ``serving``)."""

from __future__ import annotations

from dataclasses import dataclass

_MAX_PORT = 65535


@dataclass
class ServingConfig:
    """Where the scoring service listens and how it follows the trainer's exports.

    Attributes:
        host: address to bind (loopback by default; ``0.0.0.0`` to serve other machines).
        port: TCP port of the service, its metrics included at ``/metrics`` (0 = any free port).
        model_dir: export directory to serve; empty = ``<run_dir>/model``.
        poll_interval_ms: how often ``LATEST`` is checked for a newer pass (wall-clock ms).
        max_batch: most impressions in one request.
        max_request_bytes: largest request body.
        torch_threads: intra-op threads for scoring; 1 suits small batches and many replicas (a
            multi-threaded op on a busy machine waits for its slowest thread).
    """

    host: str = "127.0.0.1"
    port: int = 9402
    model_dir: str = ""
    poll_interval_ms: int = 500
    max_batch: int = 1024
    max_request_bytes: int = 4 * 1024 * 1024
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError(f"host must be a non-empty address, got {self.host!r}")
        if not 0 <= self.port <= _MAX_PORT:
            raise ValueError(f"port must be in 0..{_MAX_PORT}, got {self.port}")
        for name in ("poll_interval_ms", "max_batch", "max_request_bytes", "torch_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
