"""The trainer processes of one run: this process's rank, how many there are, collectives among them.

A run of N trainer processes is a ``torch.distributed`` process group (gloo, CPU) set up from the
environment that ``torchrun`` (or ``pepnet train --world-size N``, which runs torchrun's own
launcher) gives every worker: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``. Without that environment the trainer is a group of one and no collective ever
runs. Collectives carry small JSON documents (manifests, statistics) and arrays; nothing is
pickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from embedding_store.shard_exchange import ShardExchange
from stream.config.errors import UserError

ENV_RANK, ENV_WORLD_SIZE, ENV_LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"


@dataclass
class RankGroup:
    """Rank ``rank`` of ``world_size`` trainer processes (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    exchange: ShardExchange = field(default_factory=ShardExchange)
    # A second process group for the checkpoint writer thread: two threads must not share a group.
    background: ShardExchange = field(default_factory=ShardExchange)

    @property
    def is_root(self) -> bool:
        """True for rank 0, which writes what the run writes once (run log, manifests, LATEST, commits)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def from_environment(timeout_s: float = 1800.0) -> RankGroup:
        """The group described by the torchrun environment, joined now (gloo); a group of one without it."""
        if ENV_RANK not in os.environ or ENV_WORLD_SIZE not in os.environ:
            return RankGroup()
        try:
            rank, world_size = int(os.environ[ENV_RANK]), int(os.environ[ENV_WORLD_SIZE])
            local_rank = int(os.environ.get(ENV_LOCAL_RANK, rank))
        except ValueError:
            raise UserError(f"{ENV_RANK} and {ENV_WORLD_SIZE} must be integers (set by torchrun)") from None
        if world_size == 1:
            return RankGroup(local_rank=local_rank)
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
        background = ShardExchange(dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s)))
        return RankGroup(rank, world_size, local_rank, ShardExchange(), background)

    def close(self) -> None:
        """Leave the process group (if any)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    # ------------------------------------------------------------------ collectives
    def all_gather_ints(self, values: list[int]) -> np.ndarray:
        """int64 ``[world_size, len(values)]``: every rank's ``values``, by rank."""
        return np.stack(self.exchange.all_gather_arrays(np.asarray(values, dtype=np.int64)))

    def all_gather_json(self, value: Any) -> list[Any]:
        """Every rank's JSON-ready ``value``, by rank."""
        return [json.loads(part) for part in self.exchange.all_gather_bytes(json.dumps(value).encode())]

    def broadcast_json(self, value: Any) -> Any:
        """Rank 0's JSON-ready ``value`` on every rank."""
        return json.loads(self.exchange.broadcast_bytes(json.dumps(value).encode() if self.is_root else None))

    def all_gather_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Every rank's ``rows`` (any length, same dtype and row shape), by rank."""
        return self.exchange.all_gather_arrays(rows)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of every rank's float64 ``values``, added in rank order (the same bits everywhere)."""
        parts = self.exchange.all_gather_arrays(np.asarray(values, dtype=np.float64)[None])
        total = parts[0][0].copy()
        for part in parts[1:]:
            total += part[0]
        return total

    def barrier(self) -> None:
        """Return once every rank got here."""
        self.exchange.barrier()


def lost_another_rank(error: BaseException) -> bool:
    """True when ``error`` is a collective that failed because another rank is gone (killed, crashed):
    gloo reports a closed or reset connection as a RuntimeError naming its transport."""
    import torch.distributed as dist

    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and "gloo" in str(error))
