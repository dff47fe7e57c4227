"""Turns simulated impressions (arrays) into :class:`stream.events.formats.Impression` objects, or into
the columns of a batch (:class:`stream.events.batching.SampleColumns`), with exactly the schema's
sparse and dense features.

Where a feature comes from, by its entity in the schema:

* ``user``: a column of ``user_features_pure.csv`` of that name (e.g. ``user_active_degree``);
* ``item``: a column of ``video_features_basic_pure.csv`` (``tag`` is multi-valued: the first
  ``max_values`` tags); dense ``video_duration_s`` and ``item_age_hours`` (event time) are computed;
* ``author``: dense ``author_fans_count``;
* ``context``: ``hour_of_day`` and ``day_of_week`` of the event time (UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pepnet.schema import FeatureSchema
from stream.events.batching import SparseColumn, sparse_value_ids
from stream.events.formats import Impression
from stream.simulator.population import Population

MS_PER_HOUR = 3_600_000
CONTEXT_FEATURES = ("hour_of_day", "day_of_week")


@dataclass(frozen=True)
class ChunkView:
    """The observable side of n simulated impressions (what ends up in the events)."""

    first_index: int
    time_ms: np.ndarray  # int64 [n] event time
    domain: np.ndarray  # int64 [n]
    user_id: np.ndarray  # int64 [n]
    item_id: np.ndarray  # int64 [n]
    author_id: np.ndarray  # int64 [n]
    user_row: np.ndarray  # int64 [n]
    template: np.ndarray  # int64 [n] real video whose attributes the item carries
    duration_s: np.ndarray  # float64 [n]
    item_age_hours: np.ndarray  # float64 [n]
    author_fans: np.ndarray  # float64 [n]


DenseSource = Callable[[ChunkView], np.ndarray]


class ImpressionBuilder:
    """Builds Impression objects for a schema; per-user and per-video feature dicts are precomputed."""

    def __init__(self, schema: FeatureSchema, population: Population, id_prefix: str):
        users, videos = population.users, population.videos
        self._domains = list(schema.domains)
        self._id_prefix = id_prefix
        user_columns: dict[str, list] = {}
        item_columns: dict[str, list] = {}
        self._context: list[str] = []
        for f in schema.sparse:
            if f.entity == "user" and f.name in users.columns:
                user_columns[f.name] = users.columns[f.name]
            elif f.entity == "item" and f.name in videos.columns:
                column = videos.columns[f.name]
                item_columns[f.name] = [list(v[: f.max_values]) for v in column] if f.name == "tag" else column
            elif f.entity == "context" and f.name in CONTEXT_FEATURES:
                self._context.append(f.name)
            else:
                raise ValueError(
                    f"schema.sparse: the simulator cannot produce {f.name!r} (entity {f.entity}); it has user "
                    f"columns {sorted(users.columns)}, item columns {sorted(videos.columns)} and context "
                    f"{list(CONTEXT_FEATURES)}"
                )
        self._list_features = [name for name in item_columns if name == "tag"]
        self._user_parts = _row_dicts(user_columns, len(users))
        self._item_parts = _row_dicts(item_columns, len(videos))
        # The same values as value ids per user / per video row, for columns(): computed once.
        width = {f.name: f.max_values for f in schema.sparse}
        self._user_ids = {
            name: SparseColumn(*sparse_value_ids(name, col, width[name])) for name, col in user_columns.items()
        }
        self._item_ids = {
            name: SparseColumn(*sparse_value_ids(name, col, width[name])) for name, col in item_columns.items()
        }
        self._dense_names = [f.name for f in schema.dense]
        self._dense_sources = [_dense_source(f.name, f.entity, population) for f in schema.dense]

    def impression_id(self, index: int) -> str:
        """Unique id of the impression with this sequence number in the run."""
        return f"{self._id_prefix}-{index}"

    def sample_ids(self, view: ChunkView) -> list[str]:
        """The impression ids of a chunk (also the sample ids of its labelled samples)."""
        return [self.impression_id(i) for i in range(view.first_index, view.first_index + view.time_ms.shape[0])]

    def columns(self, view: ChunkView) -> tuple[dict[str, SparseColumn], dict[str, np.ndarray]]:
        """The sparse value ids and raw dense values of a chunk, as :meth:`build` would fill the
        impressions (without building them)."""
        sparse = {name: _gather(column, view.user_row) for name, column in self._user_ids.items()}
        sparse.update({name: _gather(column, view.template) for name, column in self._item_ids.items()})
        n = view.time_ms.shape[0]
        for name in self._context:
            values = np.asarray(_context_values(name, view.time_ms), dtype=np.int64).reshape(n, 1)
            sparse[name] = SparseColumn(values, np.ones((n, 1), dtype=bool))
        dense = {
            name: np.asarray(source(view), dtype=np.float64)
            for name, source in zip(self._dense_names, self._dense_sources, strict=True)
        }
        return sparse, dense

    def build(self, view: ChunkView) -> list[Impression]:
        n = view.time_ms.shape[0]
        context_columns = [_context_values(name, view.time_ms) for name in self._context]
        context_rows = [dict(zip(self._context, row, strict=True)) for row in zip(*context_columns, strict=True)]
        dense = np.stack([source(view) for source in self._dense_sources], axis=1) if self._dense_sources else None
        dense_rows = dense.tolist() if dense is not None else [[]] * n
        names = self._dense_names
        user_parts, item_parts, domains = self._user_parts, self._item_parts, self._domains
        list_features = self._list_features
        out = []
        for j, (t, d, uid, iid, aid, urow, tpl, dvals) in enumerate(
            zip(
                view.time_ms.tolist(),
                view.domain.tolist(),
                view.user_id.tolist(),
                view.item_id.tolist(),
                view.author_id.tolist(),
                view.user_row.tolist(),
                view.template.tolist(),
                dense_rows,
                strict=True,
            )
        ):
            sparse = {**user_parts[urow], **item_parts[tpl]}
            for name in list_features:  # a fresh list per event: the per-video one is shared
                sparse[name] = list(sparse[name])
            if context_rows:
                sparse.update(context_rows[j])
            out.append(
                Impression(
                    impression_id=self.impression_id(view.first_index + j),
                    user_id=uid,
                    item_id=iid,
                    author_id=aid,
                    domain=domains[d],
                    event_time_ms=t,
                    sparse=sparse,
                    dense=dict(zip(names, dvals, strict=True)),
                )
            )
        return out


def _gather(column: SparseColumn, rows: np.ndarray) -> SparseColumn:
    return SparseColumn(column.values[rows], column.mask[rows])


def _row_dicts(columns: dict[str, list], n: int) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)] or [
        {} for _ in range(n)
    ]


def _context_values(name: str, time_ms: np.ndarray) -> list[int]:
    hours = time_ms // MS_PER_HOUR
    if name == "hour_of_day":
        return (hours % 24).tolist()
    # 1970-01-01 was a Thursday; 0 = Monday.
    return ((hours // 24 + 3) % 7).tolist()


def _numeric_column(values: list, name: str) -> np.ndarray:
    if not all(isinstance(v, int) for v in values):
        raise ValueError(f"schema.dense: column {name!r} of the KuaiRand data is not numeric")
    return np.asarray(values, dtype=np.float64)


def _dense_source(name: str, entity: str, population: Population) -> DenseSource:
    if entity == "item" and name == "video_duration_s":
        return lambda v: v.duration_s
    if entity == "item" and name == "item_age_hours":
        return lambda v: v.item_age_hours
    if entity == "author" and name == "author_fans_count":
        return lambda v: v.author_fans
    if entity == "user" and name in population.users.columns:
        user_values = _numeric_column(population.users.columns[name], name)
        return lambda v: user_values[v.user_row]
    if entity == "item" and name in population.videos.columns:
        item_values = _numeric_column(population.videos.columns[name], name)
        return lambda v: item_values[v.template]
    raise ValueError(
        f"schema.dense: the simulator cannot produce {name!r} (entity {entity}); known: video_duration_s, "
        "item_age_hours (item), author_fans_count (author), or a numeric user/video column of the same entity"
    )
