"""Checkpoints of a run of N trainer processes, and the commit that makes a pass's checkpoints count.

Layout of ``checkpoint_dir`` (shared by every rank: one directory, e.g. on a shared file system)::

    ckpt-<pass>/                     world size 1: the checkpoint chain (base + increments) is the commit
    shard-<r>-of-<N>/ckpt-<pass>/    rank r of N: its chain of table-shard checkpoints, its partitions'
                                     next offsets and duplicate memory; rank 0's also the dense state
    COMMIT.json                      {"pass_index": k, "world_size": N}, replaced atomically by rank 0
                                     after a barrier that every rank reaches once its export and
                                     checkpoint of pass k are durable (on the checkpoint writer
                                     threads), and after rank 0 published the pass's export

A pass of N ranks counts only once ``COMMIT.json`` names it: a crash of any rank before that leaves
the previous pass committed, and every rank restarts from there. The newest committed pass wins
whatever world size wrote it (pass indices only grow), so a run can stop at N ranks and go on at
M (the table is re-sharded by the restore). Checkpoints of another world size are deleted once the
current one holds ``keep_chains`` bases of its own.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedding_store.sharding import parse_shard_dir_name, shard_dir_name
from stream.storage.atomic_file import atomic_text_writer
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.rank_group import RankGroup

log = logging.getLogger(__name__)

COMMIT_FILE = "COMMIT.json"


@dataclass(frozen=True)
class CommittedPass:
    """The checkpoint a run restarts from: its pass, the world size that wrote it, and the chain
    (base, ..., the pass) of each of its shards (one chain for world size 1)."""

    pass_index: int
    world_size: int
    chains: list[list[Path]]

    @property
    def directories(self) -> list[Path]:
        """Each shard's checkpoint directory of the pass itself."""
        return [chain[-1] for chain in self.chains]


class RunCheckpoints:
    """Where this rank checkpoints, how a pass is committed, and which committed pass to restore."""

    def __init__(self, directory: str | Path, keep_chains: int, group: RankGroup) -> None:
        self.directory = Path(directory)
        self.keep_chains = keep_chains
        self.group = group
        self.store = self._layout_store(group.rank, group.world_size)

    def _layout_store(self, shard: int, shards: int) -> CheckpointStore:
        if shards == 1:
            return CheckpointStore(self.directory, self.keep_chains)
        return CheckpointStore(self.directory / shard_dir_name(shard, shards), self.keep_chains)

    # ------------------------------------------------------------------ commit
    def commit(self, pass_index: int, publish: Callable[[], object] | None = None) -> None:
        """Called (on the checkpoint writer thread) once this rank's export and checkpoint of
        ``pass_index`` are durable: with N > 1 a barrier with the other ranks' writers, then rank 0
        runs ``publish`` (the pass directory and ``LATEST``: every shard is written) and replaces
        ``COMMIT.json``."""
        if self.group.distributed:
            self.group.background.barrier()
            if self.group.is_root:
                if publish is not None:
                    publish()
                with atomic_text_writer(self.directory / COMMIT_FILE) as f:
                    f.write(json.dumps({"pass_index": pass_index, "world_size": self.group.world_size}))
        if self.group.is_root and self._other_layouts() and len(self.store.bases()) >= self.keep_chains:
            self._delete_other_layouts()

    def _other_layouts(self) -> list[Path]:
        world_size = self.group.world_size
        found = [
            p for p in self.directory.glob("shard-*-of-*") if (parse_shard_dir_name(p.name) or (0, 0))[1] != world_size
        ]
        if world_size > 1:
            found += [path for _, path in CheckpointStore(self.directory, self.keep_chains).list()]
        elif (self.directory / COMMIT_FILE).exists():
            found.append(self.directory / COMMIT_FILE)
        return found

    def _delete_other_layouts(self) -> None:
        """Checkpoints of other world sizes: older than every one of ours, no longer needed."""
        for path in self._other_layouts():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ read
    def latest(self) -> CommittedPass | None:
        """The newest committed pass with every shard's chain intact (damaged ones are skipped with a
        warning); rank 0 decides, every rank gets the same answer (a collective)."""
        found = self._find_latest() if self.group.is_root else None
        if self.group.distributed:
            chains = None if found is None else [[str(p) for p in chain] for chain in found.chains]
            shared = self.group.broadcast_json(None if found is None else [found.pass_index, found.world_size, chains])
            found = (
                None
                if shared is None
                else CommittedPass(shared[0], shared[1], [[Path(p) for p in c] for c in shared[2]])
            )
        return found

    def _find_latest(self) -> CommittedPass | None:
        candidates = []
        single = CheckpointStore(self.directory, self.keep_chains).latest_restorable()
        if single is not None:
            candidates.append(CommittedPass(single[0], 1, [single[1]]))
        sharded = self._latest_committed_shards()
        if sharded is not None:
            candidates.append(sharded)
        return max(candidates, key=lambda c: (c.pass_index, c.world_size > 1), default=None)

    def _latest_committed_shards(self) -> CommittedPass | None:
        try:
            commit = json.loads((self.directory / COMMIT_FILE).read_text(encoding="utf-8"))
            committed, world_size = int(commit["pass_index"]), int(commit["world_size"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s is unreadable (%s); ignoring the sharded checkpoints", self.directory / COMMIT_FILE, error)
            return None
        stores = [self._layout_store(shard, world_size) for shard in range(world_size)]
        verified: list[dict[int, str | None]] = [{} for _ in stores]
        for pass_index in sorted({p for p, _ in stores[0].list() if p <= committed}, reverse=True):
            chains = [store.chain_of(pass_index, cache) for store, cache in zip(stores, verified, strict=True)]
            problems = [
                (store.path_of(pass_index), c) for store, c in zip(stores, chains, strict=True) if isinstance(c, str)
            ]
            if not problems:
                return CommittedPass(pass_index, world_size, chains)  # type: ignore[arg-type]
            for path, reason in problems:
                log.warning("checkpoint %s is damaged (%s); falling back to the previous pass", path, reason)
        return None
