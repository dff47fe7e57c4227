"""Training samples/s of every architecture from memory (no Kafka): the trainer's compute ceiling.

    python -m benchmarks.model_throughput                      # 60 batches of 512, 1 torch thread
    python -m benchmarks.model_throughput --batches 100 --threads 2 --models pepnet,mmoe
    PEPNET_MODEL_BF16_AUTOCAST=true python -m benchmarks.model_throughput --models pepnet   # bf16 network

Batches come from the simulator and are built once (``SampleBatcher``) before timing, so only
``TrainStep.step`` (table lookup, gather, pooling, forward, backward, AdaGrad, Adam) is timed, and
separately ``score`` + ``step`` (what progressive validation costs). Baseline of the same run: the
shared-bottom DNN (ratio column) and the sparse side alone (lookup + gather + pooling, no network).
The streaming trainer is expected to reach >= 80% of the ``train`` figure of its architecture.
"""

from __future__ import annotations

import argparse
import time

import torch

from pepnet.config import ARCHITECTURES
from pepnet.embedding_lookup import EmbeddingLookup
from stream.config.pipeline import load_config
from stream.evaluation.progressive import build_train_step
from stream.evaluation.sources import SimulatedSource, fixed_size_batches

WARMUP_BATCHES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--models", default=",".join(ARCHITECTURES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config()
    total = (args.batches + WARMUP_BATCHES) * args.batch_size
    batches = [b.batch for b in fixed_size_batches(SimulatedSource(config, total).chunks(), args.batch_size)]
    warmup, timed = batches[:WARMUP_BATCHES], batches[WARMUP_BATCHES:]
    samples = sum(len(b) for b in timed)
    print(f"{samples:,} samples in {len(timed)} batches of {args.batch_size}, torch threads {args.threads}")

    lookup_step = build_train_step(config, "shared_bottom")
    for b in warmup:
        lookup_step.step(b)
    lookup = EmbeddingLookup(lookup_step.table, config.schema)
    start = time.perf_counter()
    for b in timed:
        lookup.pool(b, train=True)
    sparse_rate = samples / (time.perf_counter() - start)
    print(f"{'sparse side only':<16} {sparse_rate:>10,.0f} samples/s (lookup + gather + pool)")

    rates: dict[str, tuple[float, float, float]] = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        train, train_cpu = measure(config, name, warmup, timed, score=False)
        rates[name] = (train, train_cpu, measure(config, name, warmup, timed, score=True)[0])
    base = rates.get("shared_bottom", next(iter(rates.values())))[0]
    print(f"{'model':<16} {'train/s':>10} {'train/CPU s':>12} {'score+train/s':>14} {'vs shared_bottom':>17} "
          f"{'vs sparse side':>15}")  # fmt: skip
    for name, (train, train_cpu, progressive) in rates.items():
        print(f"{name:<16} {train:>10,.0f} {train_cpu:>12,.0f} {progressive:>14,.0f} {train / base:>16.2f}x "
              f"{train / sparse_rate:>14.2f}x")  # fmt: skip


def measure(config, architecture: str, warmup: list, timed: list, score: bool) -> tuple[float, float]:
    """Samples per wall second and per CPU second of the process (all its threads) of ``step`` (or
    ``score`` then ``step``) over ``timed`` after warming up a fresh model. On a shared machine the
    CPU figure does not depend on the other processes' load (one thread); the wall figure does."""
    step = build_train_step(config, architecture)
    for b in warmup:
        step.step(b)
    start, cpu = time.perf_counter(), time.process_time()
    for b in timed:
        if score:
            step.score(b)
        step.step(b)
    samples = sum(len(b) for b in timed)
    return samples / (time.perf_counter() - start), samples / (time.process_time() - cpu)


if __name__ == "__main__":
    main()
