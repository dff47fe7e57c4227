"""Trainer throughput in one run: end to end from Kafka vs the compute ceiling vs a naive loop.

For each table size of ``--table-rows`` (default a 100k-row and a 5M-row table, same samples):

1. end to end: ``IncrementalTrainer`` on a samples topic (batched consume, JSON decoding in
   ``trainer.decoder_processes`` processes or on the reader thread, pass assembly, progressive
   validation, training, end_pass, export, incremental checkpoint captured at the pass end and
   written by a background thread).
2. ceiling: the same passes (same batches, same order) trained from memory: validation, training
   and end_pass only, no Kafka, no decoding, no export or checkpoint; measured before and after
   each end-to-end run, its baseline is their mean (the load of a shared machine drifts).

and once: 3. naive: what a user might write: ``poll()`` one message at a time, ``json.loads`` per
message, embeddings in a Python dict, the same dense network and optimizer, per-key SGD on the dict.

Prints samples/s of each, the ratios end-to-end/ceiling and end-to-end/naive, and what export and
checkpoint cost the training thread per pass (export, checkpoint capture, waiting for the previous
checkpoint's write) as a share of the pass's wall time, plus the background write time.
Run: ``nice python benchmarks/trainer.py`` (starts its own broker on free ports; ``--bootstrap``
uses an existing one). Sizes: ``--samples`` (default 100000), ``--pass-samples`` (10000).
``--decoder-processes 0,1`` (the default) runs end to end once per value, each between two
ceilings, so decoding on the reader thread and in a decoder process are compared in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import TopicPartition  # noqa: E402

from embedding_store.layout import TableLayout  # noqa: E402
from pepnet.batch import EmbeddedBatch  # noqa: E402
from pepnet.loss import multitask_loss  # noqa: E402
from pepnet.model import build_model  # noqa: E402
from pepnet.model_input import InputShape  # noqa: E402
from stream.config.pipeline import PipelineConfig, load_config  # noqa: E402
from stream.events.batching import SampleBatcher  # noqa: E402
from stream.events.formats import sample_from_dict  # noqa: E402
from stream.kafka.clients import new_consumer  # noqa: E402
from stream.kafka.topics import create_topics  # noqa: E402
from stream.simulator.generator import EventSimulator  # noqa: E402
from stream.trainer.chunk_decoder import ChunkDecoder  # noqa: E402
from stream.trainer.dedup import DedupWindow  # noqa: E402
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths  # noqa: E402
from stream.trainer.pass_assembler import DecodedChunk, PassAssembler  # noqa: E402
from stream.trainer.progressive_validation import progressive_metrics  # noqa: E402
from stream.trainer.sample_producer import produce_samples  # noqa: E402
from stream.trainer.sample_reader import partition_offsets  # noqa: E402
from stream.trainer.training_model import TrainingModel  # noqa: E402


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@contextmanager
def broker_for(bootstrap: str, work: Path) -> Iterator[str]:
    """``bootstrap`` if given, else a local broker on free ports under ``work`` (stopped on exit)."""
    if bootstrap:
        yield bootstrap
        return
    from stream.kafka.broker import LocalBroker
    from stream.kafka.config import LocalBrokerConfig

    port, controller = free_ports(2)
    broker = LocalBroker(LocalBrokerConfig(port=port, controller_port=controller, data_dir=str(work / "kafka")))
    try:
        yield broker.up().state.bootstrap
    finally:
        broker.down()


def in_scratch_dir(
    args: argparse.Namespace, prefix: str, body: Callable[[argparse.Namespace, Path, PipelineConfig, int], int]
) -> int:
    """``body(args, work, config, produced)`` with torch on ``args.threads`` threads, in a temporary directory
    (removed afterwards), with a broker (see :func:`broker_for`) and a new samples topic holding
    ``args.samples`` simulated samples (see :func:`simulated_topic`); returns its exit code."""
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with broker_for(args.bootstrap, work) as servers:
            config, produced = simulated_topic(servers, work, args.samples, args.pass_samples, args.threads)
            return body(args, work, config, produced)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_config(bootstrap: str, work: Path, pass_samples: int, threads: int) -> PipelineConfig:
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    topics = {"samples": {"name": f"{prefix}.samples", "settings": {"retention.ms": "-1"}}}
    return load_config(
        overrides={
            "kafka": {"bootstrap": bootstrap, "topics": topics},
            "run_dir": str(work / "run"),
            "monitoring": {"enabled": False},
            "trainer": {"pass_samples": pass_samples},
            "model": {"num_threads": threads},  # the trainer sets its own thread count from here
        },
        environ={},
    )


def with_table_rows(config: PipelineConfig, rows: int, run_dir: Path) -> PipelineConfig:
    """``config`` with the smallest table budget whose capacity holds ``rows`` rows, and its own run dir."""
    table = config.embedding_store
    budget = rows * 128
    while TableLayout.from_config(dataclasses.replace(table, budget_bytes=budget)).capacity < rows:
        budget += max(1, budget // 1000)
    table = dataclasses.replace(table, budget_bytes=budget)
    return dataclasses.replace(config, embedding_store=table, run_dir=str(run_dir))


def simulated_topic(
    bootstrap: str, work: Path, samples: int, pass_samples: int, threads: int
) -> tuple[PipelineConfig, int]:
    """A benchmark config whose new samples topic holds ``samples`` simulated samples (and that count)."""
    config = bench_config(bootstrap, work, pass_samples, threads)
    create_topics(config.kafka)
    simulator = EventSimulator(config.simulator, config.schema)
    labelled = (s for s, _ in simulator.labelled_samples(samples, config.joiner.window_ms))
    return config, produce_samples(config.kafka, config.kafka.topics.samples.name, labelled)


def read_all_chunks(config: PipelineConfig, decoder: ChunkDecoder) -> list[DecodedChunk]:
    """The topic decoded chunk by chunk (for the in-memory ceiling), outside any timing."""
    topic = config.kafka.topics.samples.name
    watermarks = partition_offsets(config.kafka, topic)
    consumer = new_consumer(config.kafka, "bench-preload", name="preload", overrides={"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in watermarks.items()])
    remaining = {p: high - low for p, (low, high) in watermarks.items()}
    chunks = []
    while any(remaining.values()):
        groups: dict[int, list] = {}
        for m in consumer.consume(2000, 1.0):
            if m.error() is None:
                groups.setdefault(m.partition(), []).append(m)
        for p, group in groups.items():
            offsets = np.array([m.offset() for m in group], dtype=np.int64)
            kept, batch = decoder.decode([m.value() for m in group])
            chunks.append(DecodedChunk(p, offsets[kept], batch, int(offsets[-1]) + 1))
            remaining[p] -= len(group)
    consumer.close()
    return chunks


def warm_up(config: PipelineConfig, chunks: list[DecodedChunk]) -> None:
    """A few steps on a throw-away model so that neither variant pays torch's first-call costs."""
    model = TrainingModel.fresh(config.schema, config.model, config.embedding_store)
    batch = chunks[0].batch
    for i in range(0, min(len(batch), 4 * config.trainer.batch_size), config.trainer.batch_size):
        model.step.score(batch.slice(i, i + config.trainer.batch_size))
        model.step.step(batch.slice(i, i + config.trainer.batch_size))


def ceiling(config: PipelineConfig, chunks: list[DecodedChunk]) -> list[tuple[int, float]]:
    """(samples, seconds) per pass of validation + training + end_pass on the same passes, from memory."""
    topic = config.kafka.topics.samples.name
    watermarks = partition_offsets(config.kafka, topic)
    assembler = PassAssembler(
        topic, {p: low for p, (low, _) in watermarks.items()}, config.trainer.pass_samples,
        config.trainer.pass_event_time_ms, DedupWindow(config.trainer.dedup_passes), config.schema.task_names,
        config.schema.domains, end_offsets={p: high for p, (_, high) in watermarks.items()},
    )  # fmt: skip
    for chunk in chunks:
        assembler.offer(chunk)
    passes = []
    while (closed := assembler.close_pass()) is not None:
        passes.append(closed)
    model = TrainingModel.fresh(config.schema, config.model, config.embedding_store)
    size = config.trainer.batch_size
    out = []
    for closed in passes:
        start = time.perf_counter()
        batch = closed.batch
        probs = np.concatenate([model.step.score(batch.slice(i, i + 4 * size)) for i in range(0, len(batch), 4 * size)])
        progressive_metrics(batch, probs, config.schema.task_names, config.schema.domains)
        for i in range(0, len(batch), size):
            model.step.step(batch.slice(i, i + size))
        model.table.end_pass(closed.manifest.pass_index, closed.manifest.event_time_max_ms)
        out.append((len(batch), time.perf_counter() - start))
    return out


def naive(config: PipelineConfig, limit: int) -> tuple[int, float]:
    """Per-message poll + json.loads, a dict of embeddings, the same network: ``limit`` samples."""
    topic = config.kafka.topics.samples.name
    schema = config.schema
    dim = config.embedding_store.dim
    group = f"bench-naive-{uuid.uuid4().hex[:6]}"
    consumer = new_consumer(config.kafka, group, name="naive loop", overrides={"enable.auto.commit": False})
    consumer.subscribe([topic])
    network = build_model(config.model, InputShape.from_schema(schema, dim))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    batcher = SampleBatcher(schema)
    embeddings: dict[int, np.ndarray] = {}
    rng = np.random.default_rng(0)
    slots = schema.slots()
    pending = []
    samples = 0
    start = None
    while samples < limit:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        if start is None:
            start = time.perf_counter()
        sample = sample_from_dict(json.loads(message.value()))
        pending.append(batcher.build([sample]))  # per-message feature extraction
        if len(pending) < config.trainer.batch_size:
            continue
        keys = [b.keys[0] for b in pending]
        masks = [b.key_mask[0] for b in pending]
        rows = []
        for key_row, mask_row in zip(keys, masks, strict=True):
            pooled = []
            for slot in slots:
                vectors = []
                for c in range(slot.first_column, slot.first_column + slot.width):
                    if not mask_row[c]:
                        continue
                    k = int(key_row[c])
                    if k not in embeddings:
                        embeddings[k] = rng.uniform(-0.01, 0.01, dim).astype(np.float32)
                    vectors.append(embeddings[k])
                pooled.append(np.mean(vectors, axis=0) if vectors else np.zeros(dim, np.float32))
            rows.append(np.stack(pooled))
        emb = torch.tensor(np.stack(rows), requires_grad=True)
        domain = torch.tensor([int(b.domain[0]) for b in pending])
        batch = EmbeddedBatch(emb, domain, torch.zeros(len(pending), len(schema.tasks)),
                              torch.from_numpy(np.concatenate([b.dense for b in pending])))  # fmt: skip
        logits = network(batch)
        labels = torch.from_numpy(np.concatenate([b.labels for b in pending]))
        mask = torch.from_numpy(np.concatenate([b.label_mask for b in pending]))
        loss, _ = multitask_loss(logits, labels, mask, torch.ones(len(schema.tasks)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        grads = emb.grad.numpy()
        for i, (key_row, mask_row) in enumerate(zip(keys, masks, strict=True)):
            for f, slot in enumerate(slots):
                for c in range(slot.first_column, slot.first_column + slot.width):
                    if mask_row[c]:
                        embeddings[int(key_row[c])] -= 0.05 * grads[i, f] * len(pending)
        samples += len(pending)
        pending = []
    consumer.close()
    return samples, time.perf_counter() - start


def end_to_end(
    config: PipelineConfig, chunks: list[DecodedChunk], before: list[tuple[int, float]]
) -> tuple[float, list[tuple[int, float]]]:
    """One end-to-end run, then the ceiling again (the baseline is the mean of ``before`` and that
    one: on a shared machine the load drifts during a run); prints the figures and ratios, returns
    (end-to-end samples/s, the ceiling measured after it)."""
    trainer = IncrementalTrainer(config, TrainerPaths.from_config(config, config.run_dir))
    pass_ends: list[float] = []
    start = time.perf_counter()
    options = RunOptions(stop_at_end=True, on_pass=lambda _r, _m: pass_ends.append(time.perf_counter()))
    summary = trainer.run(options)
    e2e_seconds = time.perf_counter() - start
    e2e_samples = sum(r.samples for r in summary.passes)
    e2e = e2e_samples / e2e_seconds
    # After the first pass: the reader fills the next pass while the current one trains.
    steady = sum(r.samples for r in summary.passes[1:]) / (pass_ends[-1] - pass_ends[0])
    after = ceiling(config, chunks)
    ceil = sum(n for n, _ in before + after) / sum(t for _, t in before + after)
    ceil_steady = sum(n for n, _ in before[1:] + after[1:]) / sum(t for _, t in before[1:] + after[1:])
    spread = [sum(n for n, _ in c) / sum(t for _, t in c) for c in (before, after)]
    # Wall time of each pass: between pass ends (the first: its own duration, reading excluded).
    walls = np.array([summary.passes[0].duration_s, *np.diff(pass_ends)])
    persist = np.array([[t.export_s, t.capture_s, t.wait_s] for t in summary.persist])
    writes = summary.writes
    base = [w for w in writes if w.kind == "base"]
    increments = [w for w in writes if w.kind == "increment"]
    print(f"end to end (Kafka -> passes -> train -> export -> checkpoint): {e2e_samples} samples in "
          f"{e2e_seconds:.1f} s = {e2e:,.0f} samples/s; after the first pass {steady:,.0f} samples/s")
    print(f"  (first pass started after {pass_ends[0] - start - summary.passes[0].duration_s:.1f} s: "
          f"its {summary.passes[0].samples} samples had to be read and decoded first)")
    print(f"compute ceiling (same passes from memory: validate, train, end_pass): {ceil:,.0f} samples/s "
          f"(before {spread[0]:,.0f}, after {spread[1]:,.0f}); after the first pass {ceil_steady:,.0f} samples/s")
    print(f"ratio end-to-end / ceiling = {e2e / ceil:.2f} whole run, {steady / ceil_steady:.2f} after the first pass")
    share = persist.sum(axis=1) / walls
    export_ms, capture_ms, wait_ms = 1e3 * persist.mean(axis=0)
    print(f"export + checkpoint on the training thread per pass: export capture {export_ms:.0f} ms, checkpoint "
          f"capture {capture_ms:.0f} ms, waiting for the writer {wait_ms:.0f} ms = {100 * share.mean():.1f}% of "
          f"pass time (max {100 * share.max():.1f}%)")
    for kind, items in (("base", base), ("increment", increments)):
        if items:
            seconds = np.mean([w.seconds for w in items])
            export = np.mean([w.export_seconds for w in items])
            rows, mib = np.mean([w.rows for w in items]), np.mean([w.nbytes for w in items]) / 2**20
            print(f"  writer thread, passes with a {kind} checkpoint: {len(items)}, checkpoint of {rows:,.0f} rows / "
                  f"{mib:.1f} MiB in {seconds:.3f} s after the export in {export:.3f} s "
                  f"({100 * (seconds + export) / walls.mean():.0f}% of a pass, overlapped with the next one)")
    return e2e, after


def measure_size(config: PipelineConfig, chunks: list[DecodedChunk], decoder_processes: list[int]) -> float:
    """On one table size: the ceiling, then per value of ``decoder_processes`` an end-to-end run
    followed by the ceiling again (each run's baseline: the ceilings just before and after it);
    returns the first variant's end-to-end samples/s."""
    before = ceiling(config, chunks)
    e2e = []
    for i, processes in enumerate(decoder_processes):
        variant = dataclasses.replace(
            config,
            trainer=dataclasses.replace(config.trainer, decoder_processes=processes),
            run_dir=f"{config.run_dir}-{i}-decoders-{processes}",  # a fresh run each time (no resume)
        )
        where = f"{processes} decoder process(es)" if processes else "the reader thread"
        print(f"- JSON decoded in {where} (trainer.decoder_processes: {processes})")
        samples_per_s, before = end_to_end(variant, chunks, before)
        e2e.append(samples_per_s)
    return e2e[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="existing broker (default: start one on free ports)")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--pass-samples", type=int, default=10_000)
    parser.add_argument("--naive-samples", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every variant (same for all)")
    parser.add_argument("--table-rows", default="100000,5000000", help="table capacities to measure, comma-separated")
    parser.add_argument("--decoder-processes", default="0,1",
                        help="trainer.decoder_processes values to run end to end, in this order, comma-separated")
    parser.add_argument("--verbose", action="store_true", help="log every pass of the end-to-end run")
    args = parser.parse_args()
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return in_scratch_dir(args, "bench-trainer-", run_benchmark)


def run_benchmark(args: argparse.Namespace, work: Path, config: PipelineConfig, produced: int) -> int:
    """End to end per table size, and the naive loop, on the samples topic of ``config``; prints the figures."""
    print(f"{produced} samples in {config.kafka.topics.samples.name}, passes of {args.pass_samples}, "
          f"batch {config.trainer.batch_size}, {args.threads} torch thread(s)")  # fmt: skip

    chunks = read_all_chunks(config, ChunkDecoder(SampleBatcher(config.schema)))
    warm_up(config, chunks)
    e2e = []
    for rows in [int(r) for r in args.table_rows.split(",")]:
        sized = with_table_rows(config, rows, work / f"run-{rows}")
        print(f"\n--- table of {rows:,} rows ({sized.embedding_store.budget_bytes / 2**20:,.0f} MiB budget)")
        e2e.append(measure_size(sized, chunks, [int(d) for d in args.decoder_processes.split(",")]))
    naive_samples, naive_seconds = naive(config, args.naive_samples)
    slow = naive_samples / naive_seconds
    print(f"\nnaive loop (poll per message, json per message, dict embeddings): {naive_samples} samples "
          f"in {naive_seconds:.1f} s = {slow:,.0f} samples/s")
    print(f"ratio end-to-end (first table) / naive = {e2e[0] / slow:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
