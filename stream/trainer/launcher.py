"""``pepnet train --world-size N``: N trainer processes on this machine, started by torchrun's launcher.

``torch.distributed.launcher.api.elastic_launch`` is what ``torchrun --standalone`` runs: a c10d
rendezvous on a free loopback port, then N worker processes running the same command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set, watched every
0.1 s. When any worker dies, the others are stopped and (up to ``max_restarts`` times) all are
started again; they resume from the last committed pass. Nothing here is our own cluster
manager: across machines the same command runs under ``torchrun`` itself (docs/scale-out.md).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid

from stream.config.errors import UserError

log = logging.getLogger(__name__)

SHARED_STORE_SWITCH = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"


def launch_local_ranks(world_size: int, argv: list[str], max_restarts: int) -> int:
    """Run ``pepnet <argv>`` as ``world_size`` ranks on this machine; returns the exit code (that of
    the first rank to fail, once the restarts are used up)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if world_size < 2:
        raise UserError(f"--world-size must be >= 2 to launch ranks, got {world_size}")
    if max_restarts < 0:
        raise UserError(f"--max-restarts must be >= 0, got {max_restarts}")
    # As torchrun does: N processes must not each start one thread per core.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world_size)))
    # The rendezvous store shared with the workers keeps the previous round's keys, so restarted
    # ranks may read a dead rank's address and fail to connect (pytorch/pytorch#135712): one store
    # per round instead.
    os.environ.setdefault(SHARED_STORE_SWITCH, "1")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.WARNING)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=world_size,
        run_id=f"pepnet-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=max_restarts,
        monitor_interval=0.1,
        start_method="spawn",
    )
    log.info("starting %d trainer ranks on this machine (restarted together up to %d times)", world_size, max_restarts)
    try:
        elastic_launch(config, sys.executable)("-m", "stream.cli.main", *argv)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        print(
            f"error: trainer rank {rank} stopped with {how} after {max_restarts} restart(s); every rank was stopped. "
            "Run the same command again to resume from the last committed pass",
            file=sys.stderr,
        )
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as stop:
        print(f"stopped by {stop.sigval.name}; every trainer rank was stopped", file=sys.stderr)
        return 128 + int(stop.sigval)
    return 0
