"""The feature schema: tasks, domains, and the sparse and dense features of an impression.

The id features ``user_id``, ``item_id`` and ``author_id`` are implicit and always present; every
other feature is declared here. Dense features enter the model as the embedding of their bucket
(the paper's E(*)) and, optionally, as a normalised value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Entity = Literal["user", "item", "author", "context"]

ID_FEATURES: tuple[tuple[str, Entity], ...] = (
    ("user_id", "user"),
    ("item_id", "item"),
    ("author_id", "author"),
)


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task (an action type), with its weight in the summed loss."""

    name: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be a non-empty string")
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class SparseFeature:
    """A categorical feature. ``max_values`` > 1 makes it multi-valued (mean-pooled), e.g. tags."""

    name: str
    entity: Entity = "context"
    max_values: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be a non-empty string")
        if self.max_values < 1:
            raise ValueError(f"max_values must be >= 1, got {self.max_values}")


@dataclass(frozen=True)
class DenseFeature:
    """A numeric feature, bucketised by ``boundaries`` (strictly increasing).

    ``transform`` says how the raw value is normalised when it is also fed as a number.
    """

    name: str
    entity: Entity = "context"
    boundaries: list[float] = field(default_factory=list)
    transform: Literal["log1p", "identity"] = "log1p"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be a non-empty string")
        if not self.boundaries:
            raise ValueError("boundaries must list at least one bucket boundary")
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")

    def bucket(self, values: np.ndarray) -> np.ndarray:
        """Bucket index (int64, 0..len(boundaries)) of each raw value."""
        return np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), values, side="right")

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """The value as the model sees it when dense values are fed directly (float32)."""
        v = np.asarray(values, dtype=np.float64)
        if self.transform == "log1p":
            v = np.sign(v) * np.log1p(np.abs(v))
        return v.astype(np.float32)


@dataclass(frozen=True)
class FeatureSlot:
    """One embedded feature of the model's input E: its name, entity and key columns."""

    name: str
    entity: Entity
    first_column: int
    width: int


@dataclass(frozen=True)
class FeatureSchema:
    """Tasks, domains and features shared by the simulator, the stream, the trainer and the model."""

    tasks: list[TaskSpec]
    domains: list[str]
    sparse: list[SparseFeature] = field(default_factory=list)
    dense: list[DenseFeature] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        if not self.domains:
            raise ValueError("domains must name at least one domain")
        _require_unique("tasks", [t.name for t in self.tasks])
        _require_unique("domains", list(self.domains))
        names = [n for n, _ in ID_FEATURES] + [f.name for f in self.sparse] + [f.name for f in self.dense]
        _require_unique("sparse/dense", names)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def task_weights(self) -> list[float]:
        return [t.weight for t in self.tasks]

    def domain_index(self, name: str) -> int:
        """Position of a domain name (raises KeyError for an unknown domain)."""
        return self.domains.index(name) if name in self.domains else _raise_unknown("domain", name)

    def slots(self) -> list[FeatureSlot]:
        """Embedded features in model order: ids, then sparse, then dense buckets."""
        out: list[FeatureSlot] = []
        column = 0
        specs: list[tuple[str, Entity, int]] = [(n, e, 1) for n, e in ID_FEATURES]
        specs += [(f.name, f.entity, f.max_values) for f in self.sparse]
        specs += [(f.name, f.entity, 1) for f in self.dense]
        for name, entity, width in specs:
            out.append(FeatureSlot(name, entity, column, width))
            column += width
        return out

    @property
    def num_key_columns(self) -> int:
        """Width S of ``SampleBatch.keys``."""
        last = self.slots()[-1]
        return last.first_column + last.width


def _require_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} must have unique names, {n!r} appears twice")
        seen.add(n)


def _raise_unknown(what: str, name: str) -> int:
    raise KeyError(f"unknown {what} {name!r}")
