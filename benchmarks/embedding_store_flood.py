"""Flood acceptance run of the embedding table: 10M distinct IDs into a 64 MiB budget.

Traffic per pass: Zipf-distributed IDs over a popular universe, interleaved with a steady stream of
IDs never seen before (each used once). Every batch is trained like the trainer does (lookup,
feedback, AdaGrad). Checked at every pass end: accounted bytes <= budget, process RSS growth <=
budget + the stated overhead; at the end: the hottest 1% of all distinct IDs (by true traffic
count) all still have rows.

    nice python benchmarks/embedding_store_flood.py              # full run (~10M distinct IDs)
    nice python benchmarks/embedding_store_flood.py --scale 0.02 # quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# benchmarks/embedding_store.py shares the package's name: keep this folder off the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from embedding_store import EmbeddingTable, TableConfig, feature_keys  # noqa: E402

MIB = 1024 * 1024


@dataclass
class FloodSpec:
    """Size of the flood. The defaults are the acceptance run (10M distinct IDs, 64 MiB)."""

    popular_ids: int = 2_000_000  # Zipf universe
    zipf_exponent: float = 1.1
    passes: int = 80
    zipf_lookups_per_pass: int = 400_000
    new_ids_per_pass: int = 101_000  # never-seen IDs per pass (8.1M, plus ~2M Zipf IDs: >10M distinct)
    batch_size: int = 65_536
    budget_bytes: int = 64 * MIB
    dim: int = 16
    admission_min_count: int = 2  # a row from the 2nd sighting: one-shot IDs stay in the filter
    filter_halving_passes: int = 8
    filter_fraction: float = 1 / 16  # share of the budget given to the admission filter
    # Labels are noise here (same rate for every ID); with a positive weighing 10 shows, one-shot IDs
    # that drew a positive would outrank rarely seen hot IDs, so the default flood has none.
    positive_rate: float = 0.0
    hot_fraction: float = 0.01
    # RSS allowed above the budget: interpreter/numpy pages touched during the run, batch temporaries
    # (~40 x batch_size x dim bytes) and pass-end temporaries (~13 B per row of capacity).
    rss_overhead_bytes: int = 48 * MIB
    seed: int = 0

    def scaled(self, factor: float) -> FloodSpec:
        """A proportionally smaller flood (same shape), for tests and quick looks."""
        return FloodSpec(
            popular_ids=max(1000, int(self.popular_ids * factor)),
            zipf_exponent=self.zipf_exponent,
            passes=self.passes,
            zipf_lookups_per_pass=max(1000, int(self.zipf_lookups_per_pass * factor)),
            new_ids_per_pass=max(100, int(self.new_ids_per_pass * factor)),
            batch_size=self.batch_size,
            budget_bytes=max(64 * 1024, int(self.budget_bytes * factor)),
            dim=self.dim,
            admission_min_count=self.admission_min_count,
            filter_halving_passes=self.filter_halving_passes,
            filter_fraction=self.filter_fraction,
            positive_rate=self.positive_rate,
            hot_fraction=self.hot_fraction,
            rss_overhead_bytes=self.rss_overhead_bytes,
            seed=self.seed,
        )


@dataclass
class FloodResult:
    """What the flood measured; ``ok`` when every acceptance check held."""

    distinct_ids: int
    lookups: int
    max_bytes_used: int
    budget_bytes: int
    rss_growth_bytes: int
    rss_limit_bytes: int
    hot_ids: int
    hot_missing: int
    duration_s: float
    final_rows: int
    evictions: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.max_bytes_used <= self.budget_bytes
            and self.rss_growth_bytes <= self.rss_limit_bytes
            and self.hot_missing == 0
        )


def run_flood(spec: FloodSpec, progress: bool = False) -> FloodResult:
    """Run the flood of ``spec`` and measure it."""
    rng = np.random.default_rng(spec.seed)
    # The workload's own arrays are filled (pages touched) before the RSS baseline is taken.
    traffic = np.full(spec.popular_ids, 0, dtype=np.int64)  # true count per popular ID
    grads = np.full((spec.batch_size, spec.dim), 1e-3, dtype=np.float32)
    process = psutil.Process()
    config = TableConfig(
        dim=spec.dim,
        budget_bytes=spec.budget_bytes,
        admission_min_count=spec.admission_min_count,
        admission_filter_halving_passes=spec.filter_halving_passes,
        admission_filter_bytes=max(64, int(spec.budget_bytes * spec.filter_fraction)),
        seed=spec.seed,
    )
    rss_before = process.memory_info().rss
    table = EmbeddingTable(config)
    max_used = 0
    max_rss = rss_before
    next_new_id = spec.popular_ids  # never-seen IDs come after the popular universe
    started = time.perf_counter()
    per_pass = spec.zipf_lookups_per_pass + spec.new_ids_per_pass
    for pass_index in range(spec.passes):
        t_ms = 1_700_000_000_000 + pass_index * 60_000
        for start in range(0, per_pass, spec.batch_size):
            size = min(spec.batch_size, per_pass - start)
            n_new = size * spec.new_ids_per_pass // per_pass
            ranks = (rng.zipf(spec.zipf_exponent, size - n_new) - 1) % spec.popular_ids
            np.add.at(traffic, ranks, 1)
            ids = np.concatenate([ranks, np.arange(next_new_id, next_new_id + n_new)])
            next_new_id += n_new
            rng.shuffle(ids)
            slots = table.lookup(feature_keys("item_id", ids), t_ms)
            table.record_feedback(slots, rng.random(size) < spec.positive_rate)
            table.apply_gradients(slots, grads[:size])
        table.end_pass(pass_index, t_ms + 59_999)
        stats = table.stats()
        max_used = max(max_used, stats.bytes_used)
        max_rss = max(max_rss, process.memory_info().rss)
        if progress:
            print(
                f"pass {pass_index:3d}: rows {stats.rows:,} used {stats.bytes_used / MIB:.1f} MiB "
                f"rss +{(max_rss - rss_before) / MIB:.1f} MiB evictions {stats.evictions}",
                file=sys.stderr,
            )
    distinct = int(np.count_nonzero(traffic)) + (next_new_id - spec.popular_ids)
    hot_count = max(1, int(spec.hot_fraction * distinct))
    hottest = np.argsort(-traffic, kind="stable")[:hot_count]
    present = table.lookup(feature_keys("item_id", hottest), 0, train=False) >= 0
    stats = table.stats()
    return FloodResult(
        distinct_ids=distinct,
        lookups=spec.passes * per_pass,
        max_bytes_used=max_used,
        budget_bytes=spec.budget_bytes,
        rss_growth_bytes=max_rss - rss_before,
        rss_limit_bytes=spec.budget_bytes + spec.rss_overhead_bytes,
        hot_ids=hot_count,
        hot_missing=int(np.count_nonzero(~present)),
        duration_s=time.perf_counter() - started,
        final_rows=stats.rows,
        evictions=stats.evictions,
        rejections=stats.rejections,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the flood (1.0 = acceptance size)")
    parser.add_argument("--admission-min-count", type=int, default=FloodSpec.admission_min_count)
    parser.add_argument("--positive-rate", type=float, default=FloodSpec.positive_rate)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    spec = FloodSpec(admission_min_count=args.admission_min_count, positive_rate=args.positive_rate)
    if args.scale != 1.0:
        spec = spec.scaled(args.scale)
    result = run_flood(spec, progress=not args.quiet)
    print(f"distinct IDs          {result.distinct_ids:,} ({result.lookups:,} lookups, {result.duration_s:.1f} s)")
    print(f"max accounted bytes   {result.max_bytes_used:,} <= budget {result.budget_bytes:,}")
    print(
        f"RSS growth            {result.rss_growth_bytes / MIB:.1f} MiB <= budget + stated overhead "
        f"{result.rss_limit_bytes / MIB:.1f} MiB"
    )
    print(f"hottest 1% present    {result.hot_ids - result.hot_missing:,} / {result.hot_ids:,}")
    print(f"rows at end           {result.final_rows:,}; evictions {result.evictions}; rejections {result.rejections}")
    print("PASS" if result.ok else "FAIL")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
