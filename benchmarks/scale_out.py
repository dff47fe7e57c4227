"""Trainer scale-out in one run: samples/s of 1 vs N ranks from memory and end to end, and the
table's capacity at a fixed budget per rank.

1. From memory (no broker): every rank simulates the same samples, splits them into the topic's
   partitions by user id (as the joiner's keyed producer does), keeps its own partitions, cuts
   the passes with the other ranks and trains them as ``pepnet train`` does: progressive
   validation, data-parallel steps over the sharded table, ``end_pass`` (no export, no checkpoint:
   the compute the ranks share). Samples/s = all samples / the slowest rank's time, over the whole
   run and after the first pass.
2. End to end: ``pepnet train --stop-at-end`` as one process and with ``--world-size N`` on the
   same samples topic of a broker started here (export, checkpoints, Kafka included). Samples/s
   after the first pass, from the times the passes' manifests were written.
   Also the progressive AUC of every pass in both runs (the same passes): mean per task, and
   the largest difference in any one pass.
3. Capacity: rows the table holds at the same budget per rank (the whole table's budget is N times
   it), from each from-memory run's statistics.

Run: ``nice python -m benchmarks.scale_out`` (``--ranks 2``, ``--samples``, ``--pass-samples``,
``--budget-mb`` per rank, ``--threads`` torch threads per rank, ``--bootstrap`` an existing broker).
Both variants run in the same invocation, one after the other, so they see the same machine load;
on a machine with fewer free cores than ranks the ranks share cores and the ratio says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.trainer import in_scratch_dir  # noqa: E402
from monitoring.run_log import read_pass_records  # noqa: E402
from stream.config.pipeline import PipelineConfig, load_config  # noqa: E402

PARTITIONS = 4


def overrides(bootstrap: str, topic: str, pass_samples: int, budget_bytes: int, threads: int) -> dict:
    return {
        "kafka": {"bootstrap": bootstrap, "topics": {"samples": {"name": topic, "settings": {"retention.ms": "-1"}}}},
        "monitoring": {"enabled": False},
        "trainer": {"pass_samples": pass_samples},
        "embedding_store": {"budget_bytes": budget_bytes},
        "model": {"num_threads": threads},
    }


def simulated(config: PipelineConfig, n: int) -> list:
    from stream.simulator.generator import EventSimulator

    simulator = EventSimulator(config.simulator, config.schema)
    return [s for s, _ in simulator.labelled_samples(n, config.joiner.window_ms)]


def memory_rank(settings: dict, samples_count: int) -> dict:
    """One rank of the from-memory run (launched by torchrun's launcher): per-pass (samples, seconds)."""
    import torch

    from stream.events.batching import SampleBatcher
    from stream.trainer.batch_rows import empty_batch
    from stream.trainer.data_parallel import DataParallelSteps, LocalSteps
    from stream.trainer.dedup import DedupWindow
    from stream.trainer.global_pass import GlobalPass
    from stream.trainer.pass_assembler import DecodedChunk, PassAssembler, pass_quotas
    from stream.trainer.pass_cutter import PassCutter, assign_partitions
    from stream.trainer.pass_training import train_pass
    from stream.trainer.rank_group import RankGroup
    from stream.trainer.resume import fresh_table
    from stream.trainer.training_model import TrainingModel

    config = load_config(overrides=settings, environ={})
    torch.set_num_threads(config.model.num_threads)
    group = RankGroup.from_environment()
    schema, trainer = config.schema, config.trainer
    samples = simulated(config, samples_count)
    by_partition: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    for sample in samples:
        by_partition[sample.impression.user_id % PARTITIONS].append(sample)
    mine = assign_partitions(list(range(PARTITIONS)), group.world_size, "bench")[group.rank]
    batcher = SampleBatcher(schema)
    assembler = PassAssembler(
        "bench", {p: 0 for p in mine}, trainer.pass_samples, 0, DedupWindow(trainer.dedup_passes), schema.task_names,
        schema.domains, end_offsets={p: len(by_partition[p]) for p in mine},
        quota=pass_quotas(trainer.pass_samples, list(range(PARTITIONS))), empty_batch=empty_batch(schema),
    )  # fmt: skip
    for p in mine:
        rows = by_partition[p]
        for start in range(0, len(rows), trainer.consume_messages):
            part = rows[start : start + trainer.consume_messages]
            offsets = np.arange(start, start + len(part), dtype=np.int64)
            assembler.offer(DecodedChunk(p, offsets, batcher.build(part), start + len(part)))
    model = TrainingModel(schema, config.model, fresh_table(config.embedding_store, group))
    steps = DataParallelSteps(model, group) if group.distributed else LocalSteps(model)
    cutter = PassCutter(assembler, group)
    passes = []
    group.barrier()
    while True:
        started = time.perf_counter()
        cut = cutter.next(idle_s=0.0)
        if cut.closed is None:
            break
        view = GlobalPass.of(cut.closed, group)
        train_pass(steps, cut.closed.batch, view, trainer.batch_size, schema.task_names, schema.domains, group)
        model.table.end_pass(cut.closed.manifest.pass_index, int(view.event_time_ms.max()))
        passes.append((view.size, time.perf_counter() - started))
    stats = model.table.stats()
    group.close()
    return {"passes": passes, "capacity_rows": stats.capacity_rows, "rows": stats.rows}


def from_memory(ranks: int, settings: dict, samples: int) -> dict:
    """The from-memory run with ``ranks`` processes (torchrun's launcher, as ``pepnet train``)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=ranks, run_id=f"bench-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1, start_method="spawn",
    )  # fmt: skip
    results = elastic_launch(config, memory_rank)(settings, samples)
    per_rank = [results[r]["passes"] for r in sorted(results)]
    slowest = [max(r[i][1] for r in per_rank) for i in range(len(per_rank[0]))]
    total = sum(n for n, _ in per_rank[0])
    steady = sum(n for n, _ in per_rank[0][1:])
    return {
        "samples": total,
        "samples_per_s": total / sum(slowest),
        "steady_per_s": steady / sum(slowest[1:]) if len(slowest) > 1 else float("nan"),
        "capacity_rows": results[0]["capacity_rows"],
        "rows": results[0]["rows"],
    }


def end_to_end(ranks: int, config_path: Path, run_dir: Path) -> dict:
    """``pepnet train --stop-at-end`` (``--world-size ranks``); samples/s after the first pass."""
    command = [sys.executable, "-m", "stream.cli.main", "train", "--config", str(config_path), "--run-dir",
               str(run_dir), "--stop-at-end", "--log-level", "WARNING"]  # fmt: skip
    if ranks > 1:
        command += ["--world-size", str(ranks), "--max-restarts", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"pepnet train failed: {done.stderr[-2000:]}")
    manifests = sorted((run_dir / "manifests").glob("pass-*.json"))
    samples = [json.loads(p.read_text())["samples"] for p in manifests]
    times = [p.stat().st_mtime_ns / 1e9 for p in manifests]
    auc = [r.auc for r in read_pass_records(run_dir)]
    return {
        "samples": sum(samples),
        "steady_per_s": sum(samples[1:]) / (times[-1] - times[0]),
        "passes": len(samples),
        "auc": {task: np.array([a[task] for a in auc]) for task in auc[0]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--pass-samples", type=int, default=10_000)
    parser.add_argument("--budget-mb", type=int, default=64, help="embedding-table budget per rank (MiB)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--bootstrap", default="", help="existing broker (default: start one on free ports)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    per_rank = args.budget_mb << 20
    print(f"{args.samples} simulated samples in {PARTITIONS} partitions, passes of {args.pass_samples}, "
          f"{args.threads} torch thread(s) and {args.budget_mb} MiB of table per rank, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    memory = {}
    for ranks in (1, args.ranks):
        settings = overrides("127.0.0.1:9", "bench", args.pass_samples, per_rank * ranks, args.threads)
        memory[ranks] = from_memory(ranks, settings, args.samples)
    one, many = memory[1], memory[args.ranks]
    print("\nfrom memory (validation + data-parallel training + end_pass; no broker, no export, no checkpoint):")
    for label, key in (("whole run", "samples_per_s"), ("after the first pass", "steady_per_s")):
        print(f"  {label:22} 1 rank {one[key]:8,.0f} samples/s, {args.ranks} ranks {many[key]:8,.0f} samples/s, "
              f"ratio {many[key] / one[key]:.2f}")  # fmt: skip
    capacity = many["capacity_rows"] / one["capacity_rows"]
    print(f"\ntable capacity at {args.budget_mb} MiB per rank: 1 rank {one['capacity_rows']:,} rows, "
          f"{args.ranks} ranks {many['capacity_rows']:,} rows, ratio {capacity:.2f} "
          f"(rows held: {one['rows']:,}, {many['rows']:,})")  # fmt: skip

    if args.skip_end_to_end:
        return 0
    return in_scratch_dir(args, "bench-scale-out-", end_to_end_runs)


def end_to_end_runs(args: argparse.Namespace, work: Path, config: PipelineConfig, produced: int) -> int:
    """Part 2: the same samples topic trained by one process, then by ``args.ranks`` ranks."""
    per_rank = args.budget_mb << 20
    topic = config.kafka.topics.samples.name
    runs = {}
    for ranks in (1, args.ranks):
        path = work / f"config-{ranks}.yaml"
        settings = overrides(config.kafka.bootstrap, topic, args.pass_samples, per_rank * ranks, args.threads)
        path.write_text(yaml.safe_dump(settings))
        runs[ranks] = end_to_end(ranks, path, work / f"run-{ranks}")
    one, many = runs[1], runs[args.ranks]
    print(f"\nend to end (pepnet train --stop-at-end on {produced} samples: Kafka, passes, training, export, "
          "checkpoints):")  # fmt: skip
    print(f"  {'after the first pass':22} 1 rank {one['steady_per_s']:8,.0f} samples/s, {args.ranks} ranks "
          f"{many['steady_per_s']:8,.0f} samples/s, ratio {many['steady_per_s'] / one['steady_per_s']:.2f} "
          f"({one['passes']} passes)")  # fmt: skip
    print("  progressive AUC, mean over the passes (1 rank / N ranks) and the largest difference in one pass:")
    for task, values in one["auc"].items():
        difference = np.nanmax(np.abs(many["auc"][task] - values)) if np.isfinite(values).any() else np.nan
        print(f"    {task:16} {np.nanmean(values):.4f} / {np.nanmean(many['auc'][task]):.4f}   max |diff| "
              f"{difference:.5f}")  # fmt: skip
    return 0

if __name__ == "__main__":
    sys.exit(main())
