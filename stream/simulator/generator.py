"""The event simulator: seeded streams of impressions and actions with known ground truth.

One run draws impressions chunk by chunk with numpy (Poisson arrivals in event time, domain by the
tab traffic mix, user among the tab's visitors, item by drifting popularity from a catalog that
keeps growing), labels them with the hidden :class:`GroundTruthModel`, draws a delay per action,
then materialises dataclasses. ``events`` and ``labelled_samples`` replay the same run, so they
describe exactly the same impressions and actions for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pepnet.schema import FeatureSchema
from stream.events.batching import SampleColumns
from stream.events.formats import Action, Impression, JoinInfo, LabelledSample
from stream.simulator.audience import UserSampler
from stream.simulator.catalog import MS_PER_HOUR, ItemCatalog
from stream.simulator.config import KNOWN_TASKS, SimulatorConfig
from stream.simulator.delays import ActionDelayModel
from stream.simulator.features import ChunkView, ImpressionBuilder
from stream.simulator.ground_truth import COMPONENTS, GroundTruthModel, ImpressionFactors
from stream.simulator.oracle import write_oracle_jsonl, write_samples_jsonl
from stream.simulator.population import Population, load_population

# Impressions drawn (spread over the calibration horizon) to fit the intercepts to the target rates.
CALIBRATION_IMPRESSIONS = 60_000


@dataclass(frozen=True)
class SimulatedChunk:
    """n consecutive impressions of a run with everything the hidden model decided about them."""

    view: ChunkView
    actions: np.ndarray  # bool [n, T_all]: the action happens (at some delay)
    delay_ms: np.ndarray  # int64 [n, T_all]: event-time delay of each action after the impression
    probability: np.ndarray  # float64 [n, T_all]: oracle marginal probability of each action


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` as given, or the KuaiRand-Pure copy inside the package when it is empty."""
    if data_dir:
        return Path(data_dir)
    # A directory of an installed package: a plain path (pip never installs zipped packages).
    return Path(str(resources.files("stream.simulator") / "data" / "kuairand-pure"))


class EventSimulator:
    """Seeded impressions and actions over the real KuaiRand-Pure population (event time in ms)."""

    def __init__(self, config: SimulatorConfig, schema: FeatureSchema, population: Population | None = None) -> None:
        unknown = [t for t in schema.task_names if t not in KNOWN_TASKS]
        if unknown:
            raise ValueError(f"schema.tasks: the simulator cannot generate {unknown}; it knows {list(KNOWN_TASKS)}")
        self.config = config
        self.schema = schema
        self.population = population or load_population(resolve_data_dir(config.data_dir), list(schema.domains))
        self._task_columns = np.asarray([KNOWN_TASKS.index(t) for t in schema.task_names], dtype=np.int64)
        model_seed, audience_seed, self._catalog_seed, calibration_seed, self._stream_seed = np.random.SeedSequence(
            config.seed
        ).spawn(5)
        self.model = GroundTruthModel(
            self.population.users,
            self.population.videos,
            self.population.domains,
            config,
            np.random.default_rng(model_seed),
        )
        self._audience = UserSampler(
            self.population.users, self.population.domains, np.random.default_rng(audience_seed)
        )
        self._delays = ActionDelayModel(config)
        self._builder = ImpressionBuilder(schema, self.population, id_prefix=f"sim{config.seed}")
        self._calibrate(np.random.default_rng(calibration_seed))

    # --- public API -------------------------------------------------------------------------

    @property
    def task_names(self) -> list[str]:
        """The schema's task names, in the column order of labels and oracle probabilities."""
        return self.schema.task_names

    def target_rates(self) -> dict[str, dict[str, float]]:
        """Target marginal rate of every schema task per domain (before any join window)."""
        return {
            task: {d: float(self.model.target_rates[j, col]) for j, d in enumerate(self.schema.domains)}
            for task, col in zip(self.task_names, self._task_columns.tolist(), strict=True)
        }

    def probability_within_window(self, window_ms: int) -> dict[str, float]:
        """P(an action's delay <= window_ms) per schema task."""
        within = self._delays.probability_within(window_ms)[self._task_columns]
        return dict(zip(self.task_names, within.tolist(), strict=True))

    def events(self, num_impressions: int) -> Iterator[Impression | Action]:
        """Impressions and their actions as a log delivers them: ordered by delivery time (event time
        plus a small jitter), an action never before its impression; actions of the last impressions
        are flushed at the end."""
        jitter_mean = self.config.delivery_jitter_ms
        jitter_rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 1]))
        pending = _PendingDeliveries()
        for chunk in self.simulate(num_impressions):
            view = chunk.view
            n = view.time_ms.shape[0]
            impressions = self._builder.build(view)
            imp_delivery = view.time_ms + _jitter(jitter_rng, n, jitter_mean)
            rows, cols = np.nonzero(chunk.actions[:, self._task_columns])
            act_time = view.time_ms[rows] + chunk.delay_ms[rows, self._task_columns[cols]]
            act_delivery = np.maximum(act_time + _jitter(jitter_rng, rows.shape[0], jitter_mean), imp_delivery[rows])
            pending.add_impressions(view.first_index + np.arange(n), imp_delivery, impressions)
            pending.add_actions(view.first_index + rows, cols, act_time, act_delivery, view.user_id[rows])
            yield from pending.release(int(view.time_ms[-1]), self._builder, self.task_names)
        yield from pending.release(None, self._builder, self.task_names)

    def labelled_samples(
        self, num_impressions: int, window_ms: int
    ) -> Iterator[tuple[LabelledSample, dict[str, float]]]:
        """The impressions of :meth:`events`, in event-time order, labelled with the actions whose event
        time is <= impression time + ``window_ms`` (what a correct event-time join produces), with the
        oracle probability of each label (action probability x P(delay <= window))."""
        tasks = self.task_names
        for chunk, labels, oracle in self._labelled_chunks(num_impressions, window_ms):
            impressions = self._builder.build(chunk.view)
            for imp, row, p in zip(impressions, labels.astype(np.int64).tolist(), oracle.tolist(), strict=True):
                sample = LabelledSample(
                    sample_id=imp.impression_id,
                    impression=imp,
                    labels=dict(zip(tasks, row, strict=True)),
                    join=JoinInfo(
                        window_ms=window_ms,
                        actions_joined=sum(row),
                        closed_at_watermark_ms=imp.event_time_ms + window_ms,
                        source="join",
                    ),
                )
                yield sample, dict(zip(tasks, p, strict=True))

    def labelled_columns(self, num_impressions: int, window_ms: int) -> Iterator[tuple[SampleColumns, np.ndarray]]:
        """The samples of :meth:`labelled_samples` chunk by chunk as columns (no object per sample),
        with their oracle probabilities float64 ``[n, T]``; ``SampleBatcher.from_columns`` turns
        them into exactly the batch that ``SampleBatcher.build`` makes of the samples."""
        for chunk, labels, oracle in self._labelled_chunks(num_impressions, window_ms):
            view = chunk.view
            sparse, dense = self._builder.columns(view)
            columns = SampleColumns(
                user_id=view.user_id,
                item_id=view.item_id,
                author_id=view.author_id,
                domain=view.domain,
                event_time_ms=view.time_ms,
                labels=labels.astype(np.float32),
                label_mask=np.ones(labels.shape, dtype=bool),
                sample_id=self._builder.sample_ids(view),
                sparse=sparse,
                dense=dense,
            )
            yield columns, oracle

    def _labelled_chunks(
        self, num_impressions: int, window_ms: int
    ) -> Iterator[tuple[SimulatedChunk, np.ndarray, np.ndarray]]:
        """Each chunk with its windowed labels bool ``[n, T]`` and their oracle probabilities ``[n, T]``."""
        if window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        within = self._delays.probability_within(window_ms)[self._task_columns]
        for chunk in self.simulate(num_impressions):
            labels = chunk.actions[:, self._task_columns] & (chunk.delay_ms[:, self._task_columns] <= window_ms)
            yield chunk, labels, chunk.probability[:, self._task_columns] * within

    def prelabelled_impressions(self, num_impressions: int, window_ms: int) -> Iterator[Impression]:
        """The impressions of :meth:`labelled_samples` with ``labels`` set (pre-labelled input)."""
        for sample, _ in self.labelled_samples(num_impressions, window_ms):
            sample.impression.labels = dict(sample.labels)
            yield sample.impression

    def write_oracle(self, path: str | Path, num_impressions: int, window_ms: int) -> int:
        """Write labels and oracle probabilities of the run's impressions as JSON lines (see oracle.py)."""
        return write_oracle_jsonl(path, self.labelled_samples(num_impressions, window_ms))

    def write_samples(self, path: str | Path, num_impressions: int, window_ms: int) -> int:
        """Write the labelled samples of the run with their oracle probabilities as JSON lines (see oracle.py)."""
        return write_samples_jsonl(path, self.labelled_samples(num_impressions, window_ms))

    def simulate(self, num_impressions: int) -> Iterator[SimulatedChunk]:
        """The run as arrays, chunk by chunk (deterministic for the seed and ``chunk_size``)."""
        if num_impressions < 0:
            raise ValueError(f"num_impressions must be >= 0, got {num_impressions}")
        config = self.config
        rng = np.random.default_rng(self._stream_seed)
        catalog = ItemCatalog(self.population.videos, self.model, config, np.random.default_rng(self._catalog_seed))
        share = np.cumsum(self.population.domains.traffic_share)
        gap_ms = 1000.0 / config.impressions_per_second
        elapsed_ms = 0.0
        first = 0
        while first < num_impressions:
            n = min(config.chunk_size, num_impressions - first)
            offsets = elapsed_ms + np.cumsum(rng.exponential(gap_ms, size=n))
            elapsed_ms = float(offsets[-1])
            time_ms = config.start_time_ms + np.floor(offsets).astype(np.int64)
            catalog.add_items(rng, int(rng.poisson(n * config.new_items_per_1k_impressions / 1000.0)), int(time_ms[0]))
            domain = np.minimum(np.searchsorted(share, rng.random(n) * share[-1], side="right"), len(share) - 1)
            user = self._audience.sample(rng, domain)
            item = catalog.sample(rng, n, int(time_ms[n // 2]))
            factors = _factors(catalog, user, item, domain, time_ms)
            logits = self.model.logits(factors)
            actions = self.model.draw_actions(rng, logits)
            delay_ms = self._delays.sample(rng, n)
            view = _view(self.population, catalog, first, time_ms, domain, user, item)
            yield SimulatedChunk(view, actions, delay_ms, self.model.marginals(logits))
            first += n

    # --- internals ----------------------------------------------------------------------------

    def _calibrate(self, rng: np.random.Generator) -> None:
        """Fit the hidden intercepts so that the target rates hold on average over the first
        ``calibration_horizon_impressions`` of a run (popularity drifts and new items arrive meanwhile).

        Replays the catalog's evolution chunk by chunk with its own random numbers and draws a few
        impressions per chunk, the same number in every domain so that rare tabs are fitted as well.
        """
        config = self.config
        catalog = ItemCatalog(self.population.videos, self.model, config, np.random.default_rng(self._catalog_seed))
        num_domains = len(self.population.domains.names)
        chunks = max(1, config.calibration_horizon_impressions // config.chunk_size)
        per_chunk = max(num_domains, CALIBRATION_IMPRESSIONS // chunks // num_domains * num_domains)
        chunk_span_ms = config.chunk_size * 1000.0 / config.impressions_per_second
        parts = []
        for c in range(chunks):
            chunk_start = config.start_time_ms + int(c * chunk_span_ms)
            new_items = rng.poisson(config.chunk_size * config.new_items_per_1k_impressions / 1000.0)
            catalog.add_items(rng, int(new_items), chunk_start)
            domain = np.arange(per_chunk) % num_domains
            time_ms = chunk_start + rng.integers(0, max(1, int(chunk_span_ms)), size=per_chunk)
            user = self._audience.sample(rng, domain)
            item = catalog.sample(rng, per_chunk, chunk_start)
            parts.append(_factors(catalog, user, item, domain, time_ms))
        self.model.fit_intercepts(ImpressionFactors.concatenate(parts))


def _jitter(rng: np.random.Generator, n: int, mean_ms: float) -> np.ndarray:
    if mean_ms <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.floor(rng.exponential(mean_ms, size=n)).astype(np.int64)


def _factors(
    catalog: ItemCatalog, user: np.ndarray, item: np.ndarray, domain: np.ndarray, time_ms: np.ndarray
) -> ImpressionFactors:
    author = catalog.author_row[item]
    components = np.zeros((item.shape[0], len(COMPONENTS)))
    components[:, COMPONENTS.index("quality")] = catalog.quality[item]
    components[:, COMPONENTS.index("author_quality")] = catalog.author_quality[author]
    components[:, COMPONENTS.index("freshness")] = catalog.freshness(item, time_ms)
    components[:, COMPONENTS.index("log_duration")] = np.log(catalog.duration_s[item] / 30.0)
    components[:, COMPONENTS.index("hour")] = np.sin(2 * np.pi * ((time_ms // MS_PER_HOUR) % 24) / 24.0)
    components[:, COMPONENTS.index("trend")] = catalog.trend(item, time_ms)
    return ImpressionFactors(
        user=user,
        template=catalog.template[item],
        domain=domain,
        item_latent=catalog.latent[item],
        author_latent=catalog.author_latent[author],
        components=components,
    )


def _view(
    population: Population,
    catalog: ItemCatalog,
    first: int,
    time_ms: np.ndarray,
    domain: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
) -> ChunkView:
    author = catalog.author_row[item]
    return ChunkView(
        first_index=first,
        time_ms=time_ms,
        domain=domain,
        user_id=population.users.user_id[user],
        item_id=catalog.item_id[item],
        author_id=catalog.author_id[author],
        user_row=user,
        template=catalog.template[item],
        duration_s=catalog.duration_s[item],
        item_age_hours=np.maximum(time_ms - catalog.upload_time_ms[item], 0) / MS_PER_HOUR,
        author_fans=catalog.author_fans[author],
    )


class _PendingDeliveries:
    """Events drawn but not yet delivered, released in delivery-time order up to a horizon.

    Entries are kept as arrays: delivery time, kind (0 impression, 1 action), impression sequence
    number, task column, event time, user id; impressions keep their built objects until released.
    """

    def __init__(self) -> None:
        self._columns = [np.zeros(0, dtype=np.int64) for _ in range(6)]
        self._impressions: dict[int, Impression] = {}

    def _append(self, *columns: np.ndarray) -> None:
        self._columns = [
            np.concatenate([old, np.asarray(new, dtype=np.int64)])
            for old, new in zip(self._columns, columns, strict=True)
        ]

    def add_impressions(self, seq: np.ndarray, delivery: np.ndarray, impressions: list[Impression]) -> None:
        zeros = np.zeros(seq.shape[0], dtype=np.int64)
        self._append(delivery, zeros, seq, zeros, zeros, zeros)
        self._impressions.update(zip(seq.tolist(), impressions, strict=True))

    def add_actions(
        self, seq: np.ndarray, task: np.ndarray, time_ms: np.ndarray, delivery: np.ndarray, user_id: np.ndarray
    ) -> None:
        self._append(delivery, np.ones(seq.shape[0], dtype=np.int64), seq, task, time_ms, user_id)

    def release(
        self, horizon_ms: int | None, builder: ImpressionBuilder, tasks: list[str]
    ) -> Iterator[Impression | Action]:
        """Events delivered at or before ``horizon_ms`` (all when None), in delivery order.

        Safe because every later impression has event time > horizon and delivery >= event time,
        and every later action is delivered after its (later) impression.
        """
        delivery, kind, seq, task, time_ms, user_id = self._columns
        order = np.lexsort((task, seq, kind, delivery))
        if horizon_ms is not None:
            order = order[delivery[order] <= horizon_ms]
        keep = np.ones(delivery.shape[0], dtype=bool)
        keep[order] = False
        released = [c[order].tolist() for c in (kind, seq, task, time_ms, user_id)]
        self._columns = [c[keep] for c in self._columns]
        impressions = self._impressions
        for k, s, t, tm, u in zip(*released, strict=True):
            if k == 0:
                yield impressions.pop(s)
            else:
                yield Action(impression_id=builder.impression_id(s), user_id=u, action=tasks[t], event_time_ms=tm)
