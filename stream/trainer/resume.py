"""What a run resumes from: the committed pass's read positions and its table, at any world size.

A committed pass (``RunCheckpoints.latest``) written by M ranks resumes at N ranks: the next offset
of every partition and the duplicate memory are the union of the M shards' (partitions are
disjoint, so nothing is lost or repeated); the table shard of rank r is the checkpoint's shard r
when N == M, else it is re-sharded from all M shards (``embedding_store.resharding``) under the
configured table settings; the dense state is rank 0's. The partition assignment recorded in the
checkpoint is kept while the world size and the topic's partitions are unchanged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedding_store.config import TableConfig
from embedding_store.interface import EmbeddingTableInterface
from embedding_store.resharding import reshard
from embedding_store.sharded_table import ShardedEmbeddingTable
from embedding_store.table import EmbeddingTable
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.trainer.checkpoint_writer import DENSE_STATE_FILE, STATE_FILE, TABLE_STATE_FILE
from stream.trainer.rank_group import RankGroup
from stream.trainer.run_checkpoints import CommittedPass
from stream.trainer.training_model import check_table_fits, new_table
from stream.trainer.warm_start import continue_offsets, load_warm_model

log = logging.getLogger(__name__)


@dataclass
class ResumePoint:
    """Where a run goes on: next pass, next offset per partition, duplicate memory, assignment."""

    next_pass: int = 0
    offsets: dict[int, int] = field(default_factory=dict)
    dedup_history: list[list[str]] = field(default_factory=list)
    partitions_by_rank: list[list[int]] | None = None
    pass_record: dict[str, Any] | None = None  # the committed pass's run-log record (rank 0's state)
    resumed_from: int | None = None
    base_pass: int | None = None  # base of the checkpoint chain to continue (None: the next one is a base)


def read_resume_point(committed: CommittedPass, topic: str, world_size: int) -> ResumePoint:
    """The read positions of ``committed`` (every shard's state merged); UserError on another topic."""
    states = [json.loads((path / STATE_FILE).read_text(encoding="utf-8")) for path in committed.directories]
    for path, state in zip(committed.directories, states, strict=True):
        if state["topic"] != topic:
            raise UserError(
                f"checkpoint {path} was trained on topic {state['topic']}, not {topic}; "
                "use another run_dir or trainer.checkpoint_dir"
            )
    offsets = {int(p): int(o) for state in states for p, o in state["next_offsets"].items()}
    histories = [state["dedup"] for state in states]
    merged = [sorted(set().union(*(h[i] for h in histories))) for i in range(min(map(len, histories)))]
    assignment = None
    if committed.world_size == world_size and world_size > 1:
        assignment = [sorted(int(p) for p in state["partitions"]) for state in states]
    return ResumePoint(
        next_pass=committed.pass_index + 1,
        offsets=offsets,
        dedup_history=merged if len(states) > 1 else histories[0],
        partitions_by_rank=assignment,
        pass_record=states[0]["pass_record"],
        resumed_from=committed.pass_index,
        base_pass=int(committed.chains[0][0].name.split("-")[1]) if committed.world_size == world_size else None,
    )


def restore_table(committed: CommittedPass, config: TableConfig, group: RankGroup) -> EmbeddingTableInterface:
    """This rank's table at ``committed``: its own shard, or a re-sharding of the checkpoint's shards
    (each shard read from its chain of checkpoints in turn)."""
    files = [[link / TABLE_STATE_FILE for link in chain] for chain in committed.chains]
    if committed.world_size == group.world_size:
        local = EmbeddingTable.load_checkpoint_chain(files[group.rank])
    else:
        log.info(
            "re-sharding the table of pass %d from %d to %d shards", committed.pass_index, committed.world_size,
            group.world_size,
        )  # fmt: skip
        shards = (EmbeddingTable.load_checkpoint_chain(chain) for chain in files)
        local = reshard(shards, config, group.rank, group.world_size)
    return ShardedEmbeddingTable(local, group.exchange) if group.distributed else local


def warm_start(
    model_dir: str, config: PipelineConfig, topic: str, group: RankGroup
) -> tuple[EmbeddingTableInterface, dict[str, Any], dict[int, int]]:
    """(table, dense state, next offsets) of a run that begins from the model exported in
    ``model_dir`` (``trainer.init_from``): its rows under this run's table settings (with N ranks
    every rank reads them all and keeps its share), its dense weights and domain statistics, and
    the offsets after its last pass when it was trained on ``topic``."""
    warm, files = load_warm_model(model_dir, config.schema, config.model, config.embedding_store)
    table: EmbeddingTableInterface = warm.table
    if group.distributed:
        local = reshard([warm.table], config.embedding_store, group.rank, group.world_size)
        table = ShardedEmbeddingTable(local, group.exchange)
    offsets = continue_offsets(files, topic)
    log.info("warm start from %s; %s offsets: %s", files.path, topic, offsets or "from the start")
    return table, warm.dense_state(with_optimizer=False), offsets


def fresh_table(config: TableConfig, group: RankGroup) -> EmbeddingTableInterface:
    """An empty table: one process's, or this rank's shard of N."""
    if group.distributed:
        check_table_fits(config.budget_bytes // group.world_size, config)  # this rank's share
        return ShardedEmbeddingTable.create(config, group.exchange)
    return new_table(config)


def dense_state_path(committed: CommittedPass) -> Path:
    """The dense state (network, Adam, domain statistics) of ``committed``: rank 0's checkpoint holds it."""
    return committed.directories[0] / DENSE_STATE_FILE
