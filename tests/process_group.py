"""Run a test function in N real processes joined by a torch.distributed gloo group on loopback.

``run_in_ranks(fn, world_size, *args)`` spawns ``world_size`` processes; process r initialises
the default group (rank r, gloo, 127.0.0.1 on a free port), calls ``fn(rank, world_size, *args)``
and sends its return value back; the list of return values comes back by rank. A failure in any
rank fails the test with that rank's traceback; the other ranks are killed.
"""

from __future__ import annotations

import os
import pickle
import queue
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import free_ports


def _rank_main(rank: int, fn: Callable[..., Any], world_size: int, port: int, args: tuple, results: Any) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=120))
        # Plain pickle copies tensors; the queue's own pickler would share them through file
        # descriptors that die with this process.
        results.put((rank, pickle.dumps(fn(rank, world_size, *args)), None))
    except BaseException:  # reported to the test, which fails with it
        results.put((rank, None, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_in_ranks(fn: Callable[..., Any], world_size: int, *args: Any, timeout_s: float = 240.0) -> list[Any]:
    """``fn(rank, world_size, *args)`` in ``world_size`` spawned processes; their results by rank."""
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_ports(1)[0]
    processes = [
        context.Process(target=_rank_main, args=(rank, fn, world_size, port, args, results), daemon=True)
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    by_rank: dict[int, Any] = {}
    try:
        while len(by_rank) < world_size:
            try:
                rank, value, error = results.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"ranks {sorted(set(range(world_size)) - set(by_rank))} gave no result") from None
            if error is not None:
                raise AssertionError(f"rank {rank} failed:\n{error}")
            by_rank[rank] = pickle.loads(value)  # noqa: S301 - written by this test's own processes
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    return [by_rank[rank] for rank in range(world_size)]
