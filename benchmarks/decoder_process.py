"""What decoding the samples costs the training process: on its reader thread vs in a decoder process.

    nice python benchmarks/decoder_process.py [--chunks 40] [--chunk-messages 2000]

Decodes the same chunks of simulated sample messages (one partition chunk = ``--chunk-messages``
JSON messages) with :class:`ChunkDecoder` in this process, then through one decoder process
(:class:`DecoderProcesses`, as the reader does with ``trainer.decoder_processes: 1``), and prints
CPU seconds per sample: this process's (what competes with training for the GIL and the core;
with a decoder process that is sending the values and receiving the arrays) and the decoder
process's, plus samples/s through one decoder process, its start-up time and its RSS.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil

# benchmarks/embedding_store.py shadows the package of that name: import from the repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO_ROOT)] + [e for e in sys.path if Path(e or ".").resolve() != REPO_ROOT / "benchmarks"]

from stream.config.pipeline import load_config  # noqa: E402
from stream.events.batching import SampleBatcher  # noqa: E402
from stream.events.formats import encode  # noqa: E402
from stream.simulator import EventSimulator  # noqa: E402
from stream.trainer.chunk_decoder import ChunkDecoder  # noqa: E402
from stream.trainer.decoder_processes import DecoderProcesses  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--chunk-messages", type=int, default=2000)
    args = parser.parse_args()
    config = load_config(environ={})
    simulator = EventSimulator(config.simulator, config.schema)
    values = [encode(s) for s, _ in simulator.labelled_samples(args.chunk_messages, config.joiner.window_ms)]
    samples = args.chunks * len(values)

    decoder = ChunkDecoder(SampleBatcher(config.schema))
    decoder.decode(values)  # warm: memoised string ids, first-call costs
    cpu = time.process_time()
    for _ in range(args.chunks):
        decoder.decode(values)
    thread_us = 1e6 * (time.process_time() - cpu) / samples
    print(f"reader thread: {thread_us:.1f} us CPU per sample in the training process")

    back: list[object] = []
    everything, first = threading.Event(), threading.Event()

    def deliver(*chunk: object) -> None:
        back.append(chunk)
        first.set()
        if len(back) == args.chunks + 1:
            everything.set()

    started = time.perf_counter()
    processes = DecoderProcesses(config.schema, 1, deliver, lambda error: print(f"failed: {error}"))
    try:
        processes.submit(values, -1, threading.Event())  # the first chunk also waits for the start-up
        if not first.wait(120):
            raise RuntimeError("the decoder process returned nothing in 120 s")
        startup_s = time.perf_counter() - started
        child = psutil.Process(processes.pids[0])
        child_cpu = sum(child.cpu_times()[:2])
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(args.chunks):
            processes.submit(values, i, threading.Event())
        everything.wait()
        parent_us = 1e6 * (time.process_time() - cpu) / samples
        rate = samples / (time.perf_counter() - wall)
        child_us = 1e6 * (sum(child.cpu_times()[:2]) - child_cpu) / samples
        rss = child.memory_info().rss / 2**20
    finally:
        processes.close()
    print(f"decoder process: {parent_us:.2f} us CPU per sample in the training process "
          f"({thread_us / parent_us:.0f}x less), {child_us:.1f} us in the decoder process; "
          f"{rate:,.0f} samples/s through one process; first chunk back {startup_s:.2f} s after the start; "
          f"RSS {rss:.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
