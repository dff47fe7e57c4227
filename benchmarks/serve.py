"""``pepnet serve`` in one run: request latency and throughput, and delta apply vs a full reload.

1. Latency and throughput: ``pepnet serve`` runs as a subprocess over a model directory of the
   default configuration; requests of batch 1 and batch 64 go over real HTTP on loopback, one at a
   time (latency p50/p99) and from 4 concurrent clients (requests/s). Baseline: scoring the same
   batches in-process with ``ExportedModel.score`` (no HTTP, no JSON, no validation), so the
   ratio is the serving overhead.
2. Following training at a 1M-row table: new passes changing 1k, 10k and 100k rows (and deleting
   a tenth as many) are applied in place by ``LiveModel`` (read + verify + apply) and compared with
   loading the whole model of the same pass (what a server without deltas would do).

Run: ``nice python benchmarks/serve.py`` (``--rows`` sets the table size, ``--requests`` the
number of requests per latency figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from embedding_store.keys import feature_keys  # noqa: E402
from stream.config.pipeline import PipelineConfig, load_config  # noqa: E402
from stream.events.formats import encode  # noqa: E402
from stream.scoring.exported_model import ExportedModel  # noqa: E402
from stream.serving.live_model import LiveModel  # noqa: E402
from stream.simulator.generator import EventSimulator  # noqa: E402
from stream.trainer.exporter import ModelExporter  # noqa: E402
from stream.trainer.manifest import PassManifest  # noqa: E402
from stream.trainer.training_model import TrainingModel  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 4


def build_model_dir(model_dir: Path, rows: int) -> tuple[PipelineConfig, TrainingModel, ModelExporter]:
    """A model of the default configuration whose table holds ``rows`` item rows, exported as pass 0."""
    dim = 16
    budget = int(rows * 140 / 0.93)  # ~112 B a row at dim 16 plus index and log, under the high watermark
    config = load_config(overrides={"embedding_store": {"budget_bytes": budget, "dim": dim}}, environ={})
    model = TrainingModel.fresh(config.schema, config.model, config.embedding_store)
    rng = np.random.default_rng(0)
    for start in range(0, rows, 500_000):
        count = min(500_000, rows - start)
        keys = feature_keys("item_id", np.arange(start + 1, start + count + 1, dtype=np.int64))
        model.table.upsert_rows(random_rows(rng, keys, dim))
    exporter = ModelExporter(model_dir, keep=5)
    export(exporter, model, 0)
    return config, model, exporter


def random_rows(rng: np.random.Generator, keys: np.ndarray, dim: int) -> dict[str, np.ndarray]:
    n = keys.shape[0]
    return {
        "keys": keys,
        "weights": rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.01),
        "accumulator": rng.random(n, dtype=np.float32),
        "updates": np.ones(n, dtype=np.uint16),
        "created": np.zeros(n, dtype=np.uint32),
    }


def export(exporter: ModelExporter, model: TrainingModel, pass_index: int) -> None:
    manifest = PassManifest(pass_index, "benchmark", [], 0, 0, 0, 0, 0, None)
    exporter.export(model, manifest)


def change_rows(model: TrainingModel, rng: np.random.Generator, rows: int, changed: int) -> None:
    """Train-like change: ``changed`` existing rows get new weights, a tenth as many are deleted."""
    values = rng.choice(rows, size=changed + changed // 10, replace=False) + 1
    keys = feature_keys("item_id", values.astype(np.int64))
    model.table.upsert_rows(random_rows(rng, keys[:changed], model.table.dim))
    model.table.delete_keys(keys[changed:])


def follow_figures(model_dir: Path, rows: int) -> list[tuple[int, float, float, float, float]]:
    """(changed rows, read+verify s, table rows apply s, dense apply s, full reload s) per delta size."""
    config, model, exporter = build_model_dir(model_dir, rows)
    live = LiveModel.load(model_dir)
    rng = np.random.default_rng(1)
    figures = []
    for pass_index, changed in enumerate((1_000, 10_000, 100_000), start=1):
        change_rows(model, rng, rows, changed)
        export(exporter, model, pass_index)
        started = time.perf_counter()
        update = live.poll()
        read_s = time.perf_counter() - started
        rows_s, dense_s = live.apply(update)
        started = time.perf_counter()
        ExportedModel.load(model_dir, pass_index)
        reload_s = time.perf_counter() - started
        assert live.pass_index == pass_index
        figures.append((changed, read_s, rows_s, dense_s, reload_s))
    return figures


def start_server(model_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "stream.cli.main", "serve", "--model-dir", str(model_dir), "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    match = re.search(r"on (http://[\d.]+:\d+)", process.stdout.readline())
    if match is None:
        process.kill()
        raise SystemExit("pepnet serve did not start")
    return process, match.group(1)


async def timed_requests(url: str, body: bytes, count: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of ``count`` requests sent by ``concurrency`` clients, and the wall time."""
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def client(n: int) -> None:
            for _ in range(n):
                started = time.perf_counter()
                async with session.post(url + "/v1/score", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"request failed with {response.status}")
                latencies.append(time.perf_counter() - started)

        for _ in range(20):  # warm-up
            await client(1)
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client(count // concurrency) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the embedding table")
    parser.add_argument("--requests", type=int, default=2000, help="requests per latency figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pepnet-serve-bench-") as tmp:
        model_dir = Path(tmp) / "model"
        print(f"building a {args.rows:,}-row model directory in {model_dir} ...", flush=True)
        figures = follow_figures(model_dir, args.rows)
        config = load_config(environ={})
        simulator = EventSimulator(config.simulator, config.schema)
        impressions = [s.impression for s, _ in simulator.labelled_samples(64, 300_000)]
        exported = ExportedModel.load(model_dir)
        torch.set_num_threads(config.serving.torch_threads)  # the baseline scores like the server
        process, url = start_server(model_dir)
        try:
            print(f"\nrequests to {url} (pass {exported.pass_index}, {args.rows:,} rows)\n")
            print("batch  in-process p50 ms  http p50 ms  http p99 ms  overhead  requests/s (4 clients)  impressions/s")
            for batch in (1, 64):
                chosen = impressions[:batch]
                body = json.dumps([json.loads(encode(i)) for i in chosen]).encode()
                in_process = []
                for _ in range(200):
                    started = time.perf_counter()
                    exported.score(chosen)
                    in_process.append(time.perf_counter() - started)
                one_at_a_time, _ = asyncio.run(timed_requests(url, body, args.requests // 2, 1))
                _, wall = asyncio.run(timed_requests(url, body, args.requests, CONCURRENCY))
                p50, p99 = percentile(one_at_a_time, 50), percentile(one_at_a_time, 99)
                base = statistics.median(in_process)
                rate = args.requests / wall
                print(
                    f"{batch:>5}  {base * 1e3:>17.2f}  {p50 * 1e3:>11.2f}  {p99 * 1e3:>11.2f}  "
                    f"{p50 / base:>7.2f}x  {rate:>23.0f}  {rate * batch:>13.0f}"
                )
        finally:
            process.terminate()
            process.wait(30)
    print(f"\nfollowing training at {args.rows:,} rows: a new pass applied in place vs a full reload\n")
    print("changed rows  read+verify s  apply rows s  apply dense s  total s  full reload s  reload / total")
    for changed, read_s, rows_s, dense_s, reload_s in figures:
        total = read_s + rows_s + dense_s
        print(
            f"{changed:>12,}  {read_s:>13.3f}  {rows_s:>12.4f}  {dense_s:>13.4f}  {total:>7.3f}  "
            f"{reload_s:>13.3f}  {reload_s / total:>13.1f}x"
        )


if __name__ == "__main__":
    main()
