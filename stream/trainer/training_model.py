"""The trained model as one object: embedding table + dense network + training step.

Dense state (network, Adam, domain statistics, torch RNG) is saved with ``torch.save`` of tensors
only and read back with ``torch.load(weights_only=True)``: no pickled objects are ever loaded.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedding_store.config import TableConfig
from embedding_store.interface import EmbeddingTableInterface
from embedding_store.table import EmbeddingTable
from pepnet.config import ModelConfig
from pepnet.model import build_model
from pepnet.model_input import InputShape
from pepnet.schema import FeatureSchema
from pepnet.train_step import TrainStep
from stream.config.errors import UserError


def check_table_fits(budget_bytes: int, config: TableConfig) -> None:
    """:class:`UserError` (one line) when a table of ``budget_bytes`` (bytes: the whole table, or a
    rank's shard) cannot fit in this machine's memory, instead of numpy failing to allocate terabytes."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if budget_bytes > memory:
        share = "" if budget_bytes == config.budget_bytes else " per rank"
        raise UserError(
            f"embedding_store.budget_bytes = {config.budget_bytes} ({budget_bytes / 2**30:.1f} GiB{share}) is more "
            f"than this machine's memory ({memory / 2**30:.1f} GiB); lower it"
        )


def new_table(config: TableConfig, seed: int | None = None) -> EmbeddingTable:
    """An empty embedding table of ``config``; :class:`UserError` (one line) when its byte budget
    cannot fit in this machine's memory."""
    check_table_fits(config.budget_bytes, config)
    try:
        return EmbeddingTable(config, seed=seed)
    except MemoryError:
        raise UserError(
            f"not enough free memory for an embedding table of {config.budget_bytes / 2**30:.1f} GiB "
            "(embedding_store.budget_bytes); lower it or free memory"
        ) from None


def refuse_random_weights(model_config: ModelConfig) -> None:
    """:class:`UserError` (one line) for the preset ``paper-online`` starting from random weights:
    its learning rate is meant for continuing a trained model."""
    if model_config.preset == "paper-online":
        raise UserError(
            "model.preset paper-online fine-tunes a trained model (Adam lr 5e-6) and learns next to nothing "
            "from random weights; pass --init-from MODEL_DIR (trainer.init_from: an exported model) "
            "or use model.preset cold-start"
        )


class TrainingModel:
    """Table (any :class:`EmbeddingTableInterface`), network and :class:`TrainStep` for one schema."""

    def __init__(self, schema: FeatureSchema, model_config: ModelConfig, table: EmbeddingTableInterface) -> None:
        self.schema = schema
        self.model_config = model_config
        self.table = table
        table.register_features([slot.name for slot in schema.slots()])
        self.network = build_model(model_config, InputShape.from_schema(schema, table.dim))
        self.step = TrainStep(self.network, table, schema, model_config)

    @classmethod
    def fresh(cls, schema: FeatureSchema, model_config: ModelConfig, table_config: TableConfig) -> TrainingModel:
        """A new model: random dense weights and an empty embedding table (UserError for the preset
        ``paper-online``, whose learning rate is meant for continuing a trained model)."""
        refuse_random_weights(model_config)
        return cls(schema, model_config, new_table(table_config))

    # ------------------------------------------------------------------ dense state
    def dense_state(self, with_optimizer: bool) -> dict[str, Any]:
        """Tensors of the network (+ Adam and torch RNG when ``with_optimizer``) and domain stats."""
        state: dict[str, Any] = {
            "network": self.network.state_dict(),
            "domain_stats": {k: torch.from_numpy(v) for k, v in self.step.domain_stats.state().items()},
        }
        if with_optimizer:
            state["optimizer"] = self.step.optimizer.state_dict()
            state["torch_rng"] = torch.get_rng_state()
        return state

    def dense_snapshot(self, with_optimizer: bool) -> dict[str, Any]:
        """A copy of :meth:`dense_state` that training no longer changes (to write from another thread)."""
        return copy_tensors(self.dense_state(with_optimizer))

    def save_dense(self, path: str | os.PathLike[str], with_optimizer: bool) -> None:
        """Write :meth:`dense_state` to ``path`` (the caller makes the write atomic)."""
        write_dense_state(self.dense_state(with_optimizer), path)

    def load_dense(self, path: str | os.PathLike[str]) -> None:
        """Restore what :meth:`save_dense` wrote (tensors only, ``weights_only=True``)."""
        self.load_dense_state(torch.load(Path(path), weights_only=True))

    def load_dense_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`dense_state` (network and domain statistics; Adam and RNG when present)."""
        self.network.load_state_dict(state["network"])
        self.step.domain_stats.load_state({k: v.numpy() for k, v in state["domain_stats"].items()})
        if "optimizer" in state:
            self.step.optimizer.load_state_dict(state["optimizer"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])

    def describe(self) -> dict[str, Any]:
        """JSON-ready schema and configs, enough to rebuild the network for scoring."""
        return {
            "schema": dataclasses.asdict(self.schema),
            "model": dataclasses.asdict(self.model_config),
            "embedding_dim": self.table.dim,
        }


def write_dense_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` of a dense state (tensors only) to ``path``, fsynced."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    # Written by us, not by torch's archive writer: a full disk is a plain OSError (ENOSPC), not
    # a RuntimeError "enforce fail ... unexpected pos".
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def copy_tensors(value: Any) -> Any:
    """``value`` with every tensor cloned and every array copied (nested dicts, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: copy_tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(copy_tensors(v) for v in value)
    return value


def dense_tensors_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two nested dicts of tensors/values are equal bit for bit."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(dense_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(dense_tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b
