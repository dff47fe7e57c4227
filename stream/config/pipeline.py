"""The pipeline configuration: one YAML file validated at start-up into typed dataclasses.

``load_config()`` reads the defaults (``stream/config/default.yaml``, package data), merges the
given file over them, applies ``PEPNET_*`` environment overrides and returns a
:class:`PipelineConfig`. Any problem raises :class:`ConfigError` with one line that names the key,
the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from embedding_store.config import TableConfig
from monitoring.config import MonitoringConfig
from pepnet.config import ModelConfig
from pepnet.schema import FeatureSchema
from stream.config.loader import ConfigError, apply_env_overrides, build_dataclass, keyed_message, load_yaml, merge
from stream.joiner.config import JoinerConfig
from stream.kafka.config import KafkaConfig
from stream.serving.config import ServingConfig
from stream.simulator.config import SimulatorConfig
from stream.trainer.config import TrainerConfig

__all__ = ["ConfigError", "PipelineConfig", "load_config", "DEFAULT_CONFIG_PATH"]

# Package data, read with importlib.resources: present in the wheel as in a checkout. A plain path,
# since pip installs packages unzipped.
DEFAULT_CONFIG_PATH = Path(str(resources.files("stream.config") / "default.yaml"))


@dataclass
class PipelineConfig:
    """Every section of the configuration file."""

    schema: FeatureSchema
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    embedding_store: TableConfig = field(default_factory=TableConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    joiner: JoinerConfig = field(default_factory=JoinerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    run_dir: str = "runs/latest"

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ValueError("run_dir must be a non-empty path")


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Defaults, then the file at ``path``, then ``overrides``, then ``PEPNET_*`` variables."""
    data = load_yaml(DEFAULT_CONFIG_PATH)
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG_PATH:
        data = merge(data, load_yaml(path))
    if overrides:
        data = merge(data, overrides)
    data = apply_env_overrides(PipelineConfig, data, os.environ if environ is None else environ)
    config = build_dataclass(PipelineConfig, data)
    _check_consistency(config)
    return config


def replace_section(config: PipelineConfig, section: str, **changes: Any) -> PipelineConfig:
    """``config`` with keys of one section replaced (command-line options over the file); a bad
    value is a one-line :class:`ConfigError` naming the key, as if it had come from the file."""
    current = getattr(config, section)
    try:
        return dataclasses.replace(config, **{section: dataclasses.replace(current, **changes)})
    except ValueError as e:
        fields = {f.name: f for f in dataclasses.fields(current)}
        raise ConfigError(keyed_message(str(e), section, fields)) from None


def _check_consistency(config: PipelineConfig) -> None:
    """Cross-section checks that no single dataclass can make."""
    tasks = set(config.schema.task_names)
    weights = getattr(config.model, "task_weights", None) or {}
    for task in weights:
        if task not in tasks:
            raise ConfigError(f"model.task_weights.{task}: unknown task; schema.tasks has {sorted(tasks)}")
    features = [slot.name for slot in config.schema.slots()]
    for section in ("feature_limits", "features"):
        for name in getattr(config.embedding_store, section):
            if name not in features:
                raise ConfigError(
                    f"embedding_store.{section}.{name}: unknown feature; the schema has {', '.join(features)}"
                )
