"""The incremental trainer: passes from Kafka, each validated, trained, exported and checkpointed.

Per pass, in this order: progressive validation (score the pass before training on it) ->
training in mini-batches (sparse AdaGrad in the table, Adam on the network) -> table maintenance
(``end_pass``) -> capture of the export (table delta + dense weights) and of the checkpoint (what
changed in the pass, plus the next offset of every partition) -> metrics; then the next pass
trains while a writer thread writes the export (``LATEST`` moves) and makes the checkpoint durable
(``checkpoint_writer``), and only then commits its offsets to the consumer group (lag monitoring
only: the checkpoint is the truth) and appends the pass record to ``<run_dir>/passes.jsonl``.
A restart resumes from the newest restorable checkpoint (base + increments) and seeks to its
offsets, and passes are cut from the topic's content only, so every sample is trained exactly once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from prometheus_client import CollectorRegistry

from embedding_store.stats import TableStats
from embedding_store.table import EmbeddingTable
from monitoring.run_log import PassRecord, append_pass_record, passes_path, read_pass_records
from monitoring.server import MetricsServer, start_metrics_server
from monitoring.table_metrics import TableMetrics
from monitoring.trainer_metrics import TrainerMetrics
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.events.batching import SampleBatcher
from stream.storage.atomic_file import atomic_text_writer, write_failures_as_user_errors
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.checkpoint_writer import (
    DENSE_STATE_FILE,
    STATE_FILE,
    TABLE_STATE_FILE,
    CheckpointWriter,
    PassCheckpoint,
    PersistTiming,
    WriteTiming,
    capture_pass_checkpoint,
)
from stream.trainer.dedup import DedupWindow
from stream.trainer.exporter import ModelExporter, PassExport
from stream.trainer.manifest import PassManifest
from stream.trainer.pass_assembler import AssembledPass, PassAssembler
from stream.trainer.progressive_validation import progressive_metrics
from stream.trainer.run_directory import MANIFESTS_DIR, RunDirectories, TrainerPaths, check_model_dir
from stream.trainer.sample_reader import ReaderSettings, SampleReader, partition_offsets
from stream.trainer.training_model import TrainingModel
from stream.trainer.warm_start import continue_offsets, load_warm_model

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0005  # the trainer retakes the GIL after every torch op: 5 ms waits were long


@dataclass
class RunOptions:
    """When a run stops and where it reads.

    ``max_passes``: stop once this many passes exist in total (absolute, so a restart stops at the
    same pass). ``stop_at_end``: read up to the end offsets captured at start and close a final
    partial pass. ``start_offsets``/``end_offsets`` override the checkpoint's offsets (replay).
    ``idle_timeout_s``: stop when no message arrived for this long (0 = never).
    """

    max_passes: int = 0
    stop_at_end: bool = False
    start_offsets: dict[int, int] | None = None
    end_offsets: dict[int, int] | None = None
    group_id: str | None = None
    idle_timeout_s: float = 0.0
    on_pass: Callable[[PassRecord, PassManifest], None] | None = None
    # The caller closes the metrics endpoint (close_metrics) instead of the run: a short run's
    # final values stay up for a last scrape.
    keep_metrics_endpoint: bool = False


@dataclass
class RunSummary:
    """What a run did."""

    passes: list[PassRecord] = field(default_factory=list)
    manifests: list[PassManifest] = field(default_factory=list)
    resumed_from_pass: int | None = None
    next_pass: int = 0
    invalid_messages: int = 0
    persist: list[PersistTiming] = field(default_factory=list)
    writes: list[WriteTiming] = field(default_factory=list)
    stopped: bool = False  # ended by stop() (SIGTERM), after checkpointing the pass in training


class IncrementalTrainer:
    """Trains the configured model on the samples topic (see the module docstring)."""

    def __init__(self, config: PipelineConfig, paths: TrainerPaths, topic: str | None = None) -> None:
        self.config = config
        self.paths = paths
        self.topic = topic or config.kafka.topics.samples.name
        self.schema = config.schema
        self.store = CheckpointStore(paths.checkpoint_dir, config.trainer.keep_checkpoint_chains)
        self._writer: CheckpointWriter | None = None
        self._base_pass: int | None = None  # pass of the base of the current checkpoint chain
        self.exporter = ModelExporter(paths.model_dir, config.trainer.keep_exports)
        self.model: TrainingModel | None = None
        self.metrics: TrainerMetrics | None = None
        self.table_metrics: TableMetrics | None = None
        self._server: MetricsServer | None = None
        self._dedup: DedupWindow | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask a running :meth:`run` to stop (safe from a signal handler or another thread): the pass
        being trained is finished, exported and checkpointed first; waiting for data stops at once."""
        self._stopping.set()

    # ------------------------------------------------------------------ restore
    def restore(self) -> tuple[int, dict[int, int], DedupWindow, int | None]:
        """Load the newest restorable checkpoint (or start fresh): next pass, next offsets, dedup window."""
        trainer = self.config.trainer
        latest = self.store.latest_restorable()
        self._base_pass = None
        if latest is None and trainer.init_from:
            self.model, files = load_warm_model(
                trainer.init_from, self.schema, self.config.model, self.config.embedding_store
            )
            offsets = continue_offsets(files, self.topic)
            log.info("warm start from %s; %s offsets: %s", files.path, self.topic, offsets or "from the start")
            return 0, offsets, DedupWindow(trainer.dedup_passes), None
        if latest is None:
            check_model_dir(self.paths)
            self.model = TrainingModel.fresh(self.schema, self.config.model, self.config.embedding_store)
            return 0, {}, DedupWindow(trainer.dedup_passes), None
        pass_index, chain = latest
        state = json.loads(((path := chain[-1]) / STATE_FILE).read_text(encoding="utf-8"))
        if state["topic"] != self.topic:
            raise UserError(
                f"checkpoint {path} was trained on topic {state['topic']}, not {self.topic}; "
                "use another run_dir or trainer.checkpoint_dir"
            )
        # Newer checkpoints are damaged or build on a damaged one: they are written again.
        self.store.discard_after(pass_index)
        table = EmbeddingTable.load_checkpoint_chain([link / TABLE_STATE_FILE for link in chain])
        self._base_pass = int(chain[0].name.split("-")[1])
        self.model = TrainingModel(self.schema, self.config.model, table)
        self.model.load_dense(path / DENSE_STATE_FILE)
        self._ensure_logged(PassRecord.from_json(state["pass_record"]))
        offsets = {int(p): int(o) for p, o in state["next_offsets"].items()}
        log.info("resuming after pass %d from %s", pass_index, path)
        return pass_index + 1, offsets, DedupWindow(trainer.dedup_passes, state["dedup"]), pass_index

    def _ensure_logged(self, record: PassRecord) -> None:
        """A crash between checkpoint and run-log append loses the line: write it now."""
        logged = passes_path(self.paths.run_dir).is_file() and read_pass_records(self.paths.run_dir)
        if record.pass_index not in {r.pass_index for r in logged or []}:
            append_pass_record(self.paths.run_dir, record)

    # ------------------------------------------------------------------ run
    def run(self, options: RunOptions | None = None) -> RunSummary:
        """Train passes until a stop condition of ``options`` holds.

        With ``trainer.deterministic`` torch runs deterministic algorithms on one thread for the
        run (restored afterwards, so an embedding process keeps its own settings), and so is the
        shorter GIL switch interval (see benchmarks/README.md, trainer).
        """
        deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        if self.config.trainer.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(1)
        elif self.config.model.num_threads > 0:
            torch.set_num_threads(self.config.model.num_threads)
        directories = RunDirectories(self.paths)
        directories.claim()  # before anything is read: created, locked, cleaned
        try:
            return self._run(options or RunOptions())
        finally:
            directories.release()
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
            sys.setswitchinterval(switch_interval)

    def _run(self, options: RunOptions) -> RunSummary:
        trainer = self.config.trainer
        next_pass, offsets, dedup, resumed = self.restore()
        summary = RunSummary(resumed_from_pass=resumed, next_pass=next_pass)
        self._dedup = dedup
        if options.max_passes and next_pass >= options.max_passes:
            return summary
        watermarks = partition_offsets(self.config.kafka, self.topic)
        if trainer.pass_samples < len(watermarks):
            raise UserError(
                f"trainer.pass_samples = {trainer.pass_samples} is less than the {len(watermarks)} partitions of "
                f"{self.topic} (a pass takes a share of every partition); set it to {len(watermarks)} or more"
            )
        start = dict(options.start_offsets) if options.start_offsets is not None else {}
        for p, (low, _high) in watermarks.items():
            if p not in start:
                start[p] = offsets.get(p, low)
            if start[p] < low:
                log.warning("partition %d: offsets before %d were deleted by retention; starting there", p, low)
                start[p] = low
        end = options.end_offsets
        if end is None and options.stop_at_end:
            end = {p: high for p, (_low, high) in watermarks.items()}
        assembler = PassAssembler(
            self.topic, start, trainer.pass_samples, trainer.pass_event_time_ms, dedup,
            self.schema.task_names, self.schema.domains, first_pass_index=next_pass, end_offsets=end,
        )  # fmt: skip
        self._start_metrics()
        log.info("%s", self._start_line(options, start, end, resumed))
        reader = SampleReader(
            self.config.kafka,
            self.topic,
            options.group_id or trainer.consumer_group,
            start,
            SampleBatcher(self.schema),
            ReaderSettings(trainer.consume_messages, trainer.consume_timeout_ms, trainer.queue_chunks),
            end_offsets=end,
            stats_callback=self.metrics.update_consumer_lag if self.metrics is not None else None,
            statistics_interval_ms=self.config.monitoring.kafka_stats_interval_ms,
            on_invalid=self.metrics.invalid_samples.inc if self.metrics is not None else None,
        )
        buffer_limit = {p: 2 * q + trainer.consume_messages for p, q in assembler.quota.items()}
        reader.start()
        self._writer = CheckpointWriter(self.store)
        try:
            last_data = time.monotonic()
            while not self._stopping.is_set():  # checked between passes and while waiting for data
                closed = assembler.close_pass()
                if closed is not None:
                    record = self._train_pass(closed, reader, summary)
                    summary.passes.append(record)
                    summary.manifests.append(closed.manifest)
                    summary.next_pass = closed.manifest.pass_index + 1
                    if options.on_pass is not None:
                        options.on_pass(record, closed.manifest)
                    if options.max_passes and summary.next_pass >= options.max_passes:
                        break
                    continue
                if assembler.finished:
                    break
                chunk = reader.get(timeout_s=0.2)
                if chunk is None:
                    if options.idle_timeout_s and time.monotonic() - last_data > options.idle_timeout_s:
                        break
                    continue
                last_data = time.monotonic()
                assembler.offer(chunk)
                reader.set_paused({p for p in assembler.partitions if assembler.buffered(p) > buffer_limit[p]})
        finally:
            summary.invalid_messages = reader.decoder.invalid
            summary.stopped = self._stopping.is_set()
            try:
                self._writer.close()  # the last checkpoint durable (and its offsets committed) first
                summary.writes = self._writer.timings
            finally:
                self._writer = None
                reader.close()
                if not options.keep_metrics_endpoint:
                    self.close_metrics()
        return summary

    def _start_line(
        self, options: RunOptions, start: dict[int, int], end: dict[int, int] | None, resumed: int | None
    ) -> str:
        """What the run reads, where it writes and where its metrics are, in one line."""
        trainer = self.config.trainer
        group = options.group_id or trainer.consumer_group
        origin = f"after checkpoint of pass {resumed}" if resumed is not None else "fresh model"
        if options.start_offsets is not None:
            origin += f", offsets {_offsets_text(start)}"
        limit = f" up to offsets {_offsets_text(end)}" if end is not None else ""
        size = f"{trainer.pass_samples} samples" + (
            f" or {trainer.pass_event_time_ms} ms of event time" if trainer.pass_event_time_ms else ""
        )
        stop = f", stopping at pass {options.max_passes}" if options.max_passes else ""
        metrics = self._server.url if self._server is not None else "off (monitoring.enabled: false)"
        return (
            f"trainer: reading {self.topic} ({len(start)} partitions) at {self.config.kafka.bootstrap_servers} "
            f"as group {group}{limit}, {origin}; passes of {size}{stop}; model -> {self.paths.model_dir}, "
            f"run log -> {self.paths.run_dir / 'passes.jsonl'}; metrics at {metrics}"
        )

    # ------------------------------------------------------------------ one pass
    def _train_pass(self, closed: AssembledPass, reader: SampleReader, summary: RunSummary) -> PassRecord:
        assert self.model is not None
        started = time.perf_counter()
        batch, manifest = closed.batch, closed.manifest
        step, table = self.model.step, self.model.table
        size = self.config.trainer.batch_size
        # 1. progressive validation: predictions before the pass is trained on
        probabilities = (
            np.concatenate([step.score(batch.slice(i, i + 4 * size)) for i in range(0, len(batch), 4 * size)])
            if len(batch)
            else np.zeros((0, len(self.schema.tasks)), dtype=np.float32)
        )
        validation = progressive_metrics(batch, probabilities, self.schema.task_names, self.schema.domains)
        # 2. training in mini-batches; the pass loss per task weighs each batch by its observed labels
        loss_sum = np.zeros(len(self.schema.tasks))
        observed = np.zeros(len(self.schema.tasks))
        for i in range(0, len(batch), size):
            part = batch.slice(i, i + size)
            result = step.step(part)
            counts = part.label_mask.sum(axis=0)
            loss_sum += np.nan_to_num(np.array([result.task_loss[t] for t in self.schema.task_names])) * counts
            observed += counts
        # 3. table maintenance
        report = table.end_pass(manifest.pass_index, manifest.event_time_max_ms)
        # 4. export: captured now, written by the writer thread before the checkpoint
        exported = time.perf_counter()
        export = self.exporter.prepare(self.model, manifest)
        export_s = time.perf_counter() - exported
        manifest_path = self.paths.run_dir / MANIFESTS_DIR / f"pass-{manifest.pass_index:09d}.json"
        with (
            write_failures_as_user_errors(f"the manifest of pass {manifest.pass_index}"),
            atomic_text_writer(manifest_path) as f,
        ):
            f.write(manifest.to_json())
        duration = time.perf_counter() - started
        stats = table.stats()
        record = PassRecord(
            pass_index=manifest.pass_index,
            samples=manifest.samples,
            duration_s=duration,
            samples_per_s=manifest.samples / duration if duration > 0 else 0.0,
            loss={t: float(loss_sum[k] / observed[k]) if observed[k] else float("nan")
                  for k, t in enumerate(self.schema.task_names)},
            auc=validation.auc,
            auc_by_domain=validation.auc_by_domain,
            logloss=validation.logloss,
            logloss_by_domain=validation.logloss_by_domain,
            observed=validation.observed,
            positives=validation.positives,
            positives_by_domain=validation.positives_by_domain,
            logloss_stderr=validation.logloss_stderr,
            table_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            table_rows=stats.rows,
            evictions=dict(report.evictions),
            consumer_lag=reader.lag(manifest.next_offsets()),
            event_time_min_ms=manifest.event_time_min_ms,
            event_time_max_ms=manifest.event_time_max_ms,
        )  # fmt: skip
        # 5. checkpoint, the truth for restarts: captured now, durable while the next pass trains; then
        # 6. offsets to the consumer group (lag monitoring only) and 7. the run log line
        captured = time.perf_counter()
        checkpoint = self._capture_checkpoint(closed, record, reader, export)
        capture_s = time.perf_counter() - captured
        assert self._writer is not None
        wait_s = self._writer.submit(checkpoint)
        summary.persist.append(PersistTiming(manifest.pass_index, export_s, capture_s, wait_s))
        # 8. metrics
        self._publish(record, manifest, stats)
        log.info(
            "pass %d: %d samples (%d duplicates dropped) in %.2f s, %.0f samples/s, %d table rows",
            manifest.pass_index, manifest.samples, manifest.duplicates, duration, record.samples_per_s, stats.rows,
        )  # fmt: skip
        return record

    def _capture_checkpoint(
        self, closed: AssembledPass, record: PassRecord, reader: SampleReader, export: PassExport
    ) -> PassCheckpoint:
        """The pass's checkpoint copied out of the model (a base every K passes, else an increment),
        carrying its export, which the writer writes first."""
        assert self.model is not None
        manifest = closed.manifest
        if (
            self._base_pass is None
            or manifest.pass_index - self._base_pass >= self.config.trainer.checkpoint_base_every_passes
        ):
            self._base_pass = manifest.pass_index
        metrics, run_dir, next_offsets = self.metrics, self.paths.run_dir, manifest.next_offsets()

        def on_durable() -> None:  # on the writer thread, once the checkpoint is on disk
            reader.commit(next_offsets)
            append_pass_record(run_dir, record)
            if metrics is not None:
                metrics.record_checkpoint()

        dedup = self._dedup.closed_passes() if self._dedup is not None else []
        base = self._base_pass == manifest.pass_index
        return capture_pass_checkpoint(self.model, manifest, record, self.topic, dedup, base, on_durable, export)

    # ------------------------------------------------------------------ metrics
    def _start_metrics(self) -> None:
        monitoring = self.config.monitoring
        if not monitoring.enabled:
            return
        registry = CollectorRegistry()
        self.metrics = TrainerMetrics(registry)
        self.table_metrics = TableMetrics(registry)
        try:
            self._server = start_metrics_server(registry, monitoring.host, monitoring.trainer_port)
        except OSError as error:
            raise UserError(
                f"trainer {error.strerror}; "
                "set monitoring.trainer_port (0 = any free port) or monitoring.enabled: false"
            ) from None

    @property
    def metrics_url(self) -> str | None:
        """The metrics endpoint's URL while it serves, else None."""
        return self._server.url if self._server is not None else None

    def close_metrics(self) -> None:
        """Stop serving the metrics endpoint (done by :meth:`run` unless it was asked to keep it)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def _publish(self, record: PassRecord, manifest: PassManifest, stats: TableStats) -> None:
        """Update the Prometheus metrics from the pass's record and the table's end-of-pass stats."""
        if self.metrics is None or self.table_metrics is None:
            return
        self.metrics.record_pass(record)
        self.metrics.record_dropped_duplicates(manifest.duplicates)
        self.table_metrics.update(
            bytes_by_component=stats.bytes_by_component,
            used_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            rows_by_feature=stats.rows_per_feature,
            evictions_by_reason=stats.evictions,
            admissions=stats.admissions,
            rejections_by_reason=stats.rejections,
        )


def _offsets_text(offsets: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


def read_manifests(run_dir: str | Path) -> list[PassManifest]:
    """Every pass manifest a trainer wrote into ``run_dir``, by pass index."""
    directory = Path(run_dir) / MANIFESTS_DIR
    return [
        PassManifest.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("pass-*.json"))
    ]


__all__ = ["IncrementalTrainer", "RunOptions", "RunSummary", "TrainerPaths", "read_manifests"]
