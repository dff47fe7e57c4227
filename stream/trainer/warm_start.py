"""Warm start: a training run that begins from an exported model instead of random weights.

``pepnet train --init-from MODEL_DIR`` (``trainer.init_from``) in a run without a checkpoint: the
pass ``LATEST`` names is verified and read like ``pepnet score`` reads it (``model_files``), its
dense weights and domain statistics go into a network built from this run's config, its table
rows into a table with this run's table settings, and Adam starts afresh at this run's learning
rate (exports carry no optimizer state): the paper's online setting, a trained model going on.
An export of the run's own topic is continued after the last message it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from embedding_store.config import TableConfig
from embedding_store.table import EmbeddingTable
from pepnet.config import ModelConfig
from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.scoring.model_files import PassFiles, latest_pass, read_dense_state
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel

# ModelConfig fields that decide the network's parameters (and what they mean).
NETWORK_FIELDS = (
    "architecture",
    "gamma",
    "tower_hidden",
    "gate_hidden",
    "domain_embedding_dim",
    "bottom_hidden",
    "mmoe_experts",
    "expert_hidden",
    "use_dense_values",
    "domain_side_to_towers",
)


def load_warm_model(
    model_dir: str | os.PathLike[str], schema: FeatureSchema, model_config: ModelConfig, table_config: TableConfig
) -> tuple[TrainingModel, PassFiles]:
    """The model exported in ``model_dir`` ready to train on with this run's settings, and the pass
    it came from. UserError (one line) when it cannot be read or was made for another network."""
    model_dir = Path(model_dir)
    files = latest_pass(model_dir)
    problems = incompatibilities(files.description, schema, model_config, table_config.dim)
    if problems:
        raise UserError(
            f"cannot warm-start from {model_dir}: {'; '.join(problems)}; "
            "use the settings that model was trained with, or another model directory"
        )
    dense_state = read_dense_state(files.path)
    try:
        table = EmbeddingTable.load_export(
            [model_dir / name for name in files.table_dirs], up_to_pass=files.pass_index, config=table_config
        )
        model = TrainingModel(schema, model_config, table)
        model.load_dense_state(dense_state)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        first_line = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
        raise UserError(f"cannot warm-start from {model_dir} (pass {files.pass_index}): {first_line[:200]}") from None
    return model, files


def continue_offsets(files: PassFiles, topic: str) -> dict[int, int]:
    """Where a warm run on ``topic`` starts: after the exported pass's messages when that model was
    trained on the same topic (its manifest, checked with the pass), else {} (the beginning)."""
    try:
        manifest = PassManifest.from_dict(json.loads((files.path / "manifest.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return manifest.next_offsets() if manifest.topic == topic else {}


def incompatibilities(
    description: dict[str, Any], schema: FeatureSchema, model_config: ModelConfig, dim: int
) -> list[str]:
    """How an export's ``model.json`` differs from this run's schema and network, as ``key: X there, Y here``."""
    problems = []
    exported_schema = description.get("schema", {})
    for name, value in dataclasses.asdict(schema).items():
        if exported_schema.get(name) != value:
            problems.append(f"schema.{name} differs from the configured one")
    for name in NETWORK_FIELDS:
        exported, here = description.get("model", {}).get(name), getattr(model_config, name)
        if exported != here:
            problems.append(f"model.{name} is {exported!r} there, {here!r} here")
    if description.get("embedding_dim") != dim:
        problems.append(f"embedding_store.dim is {description.get('embedding_dim')} there, {dim} here")
    return problems
