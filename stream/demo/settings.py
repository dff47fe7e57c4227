"""What ``pepnet demo`` runs: its sizes (kept apart from the pipeline so that ``--help`` is instant)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DemoSettings:
    """Sizes of the demo (the defaults take about 40 s on a 2-core machine once the jars are fetched)."""

    impressions: int = 90_000
    passes: int = 14
    pass_samples: int = 5_000
    run_dir: str = ""  # empty = runs/demo-<unix time>
    keep_broker: bool = False
    idle_timeout_s: float = 90.0
