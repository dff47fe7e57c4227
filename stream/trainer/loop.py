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

The same loop runs as rank r of N trainer processes (``RankGroup``): each rank reads its own
partitions, the ranks cut every pass together (``PassCutter``), train its global mini-batches data
parallel over one sharded table (``DataParallelSteps``), write their table shards' exports and
checkpoints, and commit the pass once every rank's are durable (``RunCheckpoints``); rank 0 writes
what is written once (manifest, run log, the pass directory and ``LATEST``, the commit). See docs/scale-out.md.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from embedding_store.interface import EmbeddingTableInterface
from monitoring.run_log import PassRecord, append_pass_record, passes_path, read_pass_records
from monitoring.table_metrics import TableMetrics
from monitoring.trainer_metrics import TrainerMetrics
from stream.config.pipeline import PipelineConfig
from stream.events.batching import SampleBatcher
from stream.storage.atomic_file import atomic_text_writer, write_failures_as_user_errors
from stream.trainer.batch_rows import empty_batch
from stream.trainer.checkpoint_writer import (
    CheckpointWriter,
    PassCheckpoint,
    PersistTiming,
    capture_pass_checkpoint,
)
from stream.trainer.data_parallel import DataParallelSteps, LocalSteps
from stream.trainer.dedup import DedupWindow
from stream.trainer.exporter import ModelExporter, PassExport
from stream.trainer.global_pass import GlobalPass
from stream.trainer.manifest import PassManifest, merge_manifests
from stream.trainer.pass_assembler import AssembledPass, PassAssembler
from stream.trainer.pass_cutter import PassCutter, plan_reads, shared_watermarks
from stream.trainer.pass_training import train_pass
from stream.trainer.rank_group import RankGroup
from stream.trainer.resume import (
    ResumePoint,
    dense_state_path,
    fresh_table,
    read_resume_point,
    restore_table,
    warm_start,
)
from stream.trainer.run_checkpoints import RunCheckpoints
from stream.trainer.run_directory import MANIFESTS_DIR, RunDirectories, TrainerPaths, check_model_dir
from stream.trainer.run_options import RunOptions, RunSummary
from stream.trainer.sample_reader import ReaderSettings, SampleReader
from stream.trainer.start_line import RunDescription, start_line
from stream.trainer.trainer_monitoring import TrainerMonitoring
from stream.trainer.training_model import TrainingModel, refuse_random_weights

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0005  # the trainer retakes the GIL after every torch op: 5 ms waits were long


class IncrementalTrainer:
    """Trains the configured model on the samples topic (see the module docstring). ``group`` makes
    this process rank r of N (``RankGroup.from_environment``); the default is a group of one."""

    def __init__(
        self, config: PipelineConfig, paths: TrainerPaths, topic: str | None = None, group: RankGroup | None = None
    ) -> None:
        self.config = config
        self.paths = paths
        self.topic = topic or config.kafka.topics.samples.name
        self.schema = config.schema
        self.group = group or RankGroup()
        trainer = config.trainer
        self.checkpoints = RunCheckpoints(paths.checkpoint_dir, trainer.keep_checkpoint_chains, self.group)
        self._writer: CheckpointWriter | None = None
        self._base_pass: int | None = None  # pass of the base of the current checkpoint chain
        self.exporter = ModelExporter(paths.model_dir, trainer.keep_exports, self.group.rank, self.group.world_size)
        self.model: TrainingModel | None = None
        self.steps: LocalSteps | None = None
        self.monitoring = TrainerMonitoring(config.monitoring, self.group)
        self._dedup: DedupWindow | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask a running :meth:`run` to stop (safe from a signal handler or another thread): the pass
        being trained is finished, exported and checkpointed first; waiting for data stops at once.
        With N ranks they stop together, at the first point where any of them was asked to."""
        self._stopping.set()

    # ------------------------------------------------------------------ restore
    def restore(self) -> ResumePoint:
        """Load the newest committed checkpoint (or start fresh), re-sharding the table when it was
        written by another number of ranks; returns where the run goes on."""
        committed = self.checkpoints.latest()
        self._base_pass = None
        if committed is None and self.config.trainer.init_from:
            return self._warm_start(self.config.trainer.init_from)
        if committed is None:
            check_model_dir(self.paths)
            refuse_random_weights(self.config.model)
            self._build_model(fresh_table(self.config.embedding_store, self.group))
            return ResumePoint()
        resume = read_resume_point(committed, self.topic, self.group.world_size)
        # Newer checkpoints of ours are damaged, build on a damaged one, or were never committed.
        self.checkpoints.store.discard_after(committed.pass_index)
        self._base_pass = resume.base_pass
        self._build_model(restore_table(committed, self.config.embedding_store, self.group))
        assert self.model is not None
        self.model.load_dense(dense_state_path(committed))
        if self.group.is_root and resume.pass_record is not None:
            self._ensure_logged(PassRecord.from_json(resume.pass_record))
        log.info("resuming after pass %d (checkpoint of %d ranks)", committed.pass_index, committed.world_size)
        return resume

    def _warm_start(self, model_dir: str) -> ResumePoint:
        """Begin from an exported model (``trainer.init_from``; with N ranks, this rank's share)."""
        table, dense_state, offsets = warm_start(model_dir, self.config, self.topic, self.group)
        self._build_model(table)
        assert self.model is not None
        self.model.load_dense_state(dense_state)
        return ResumePoint(offsets=offsets)

    def _build_model(self, table: EmbeddingTableInterface) -> None:
        self.model = TrainingModel(self.schema, self.config.model, table)
        # The data-parallel steps replace the optimizer: built before a checkpoint's dense state is loaded.
        self.steps = DataParallelSteps(self.model, self.group) if self.group.distributed else LocalSteps(self.model)

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
        # Rank 0 holds the run directory's locks for every rank; each rank cleans its own shards' files.
        shard_dirs = [self.exporter.shard_dir, self.checkpoints.store.directory] if self.group.distributed else []
        directories = RunDirectories(self.paths, lock=self.group.is_root, shard_dirs=shard_dirs)
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
        resume = self.restore()
        summary = RunSummary(resumed_from_pass=resume.resumed_from, next_pass=resume.next_pass)
        dedup = DedupWindow(trainer.dedup_passes, resume.dedup_history)
        self._dedup = dedup
        if options.max_passes and resume.next_pass >= options.max_passes:
            return summary
        plan = plan_reads(
            shared_watermarks(self.config.kafka, self.topic, self.group), self.group, self.topic,
            self.config.trainer.pass_samples, resume.offsets, resume.partitions_by_rank, options.start_offsets,
            options.end_offsets, options.stop_at_end,
        )  # fmt: skip
        mine, start, end = plan.partitions, plan.start, plan.end
        if self.group.distributed:
            group = self.group
            log.info("rank %d of %d reads partitions %s of %s", group.rank, group.world_size, mine, self.topic)
        assembler = PassAssembler(
            self.topic, start, trainer.pass_samples, trainer.pass_event_time_ms, dedup, self.schema.task_names,
            self.schema.domains, first_pass_index=resume.next_pass, end_offsets=end, quota=plan.quota,
            empty_batch=empty_batch(self.schema),
        )  # fmt: skip
        cutter = PassCutter(assembler, self.group)
        self.monitoring.start()
        log.info("%s", start_line(RunDescription(
            self.topic, self.config.kafka.bootstrap_servers, options.group_id or trainer.consumer_group, start, end,
            resume.resumed_from, options.start_offsets is not None, options.max_passes, self.paths.model_dir,
            self.paths.run_dir, self.monitoring.url,
        ), trainer))  # fmt: skip
        reader = SampleReader(
            self.config.kafka,
            self.topic,
            options.group_id or trainer.consumer_group,
            start,
            SampleBatcher(self.schema),
            ReaderSettings.of(trainer),
            end_offsets=end,
            stats_callback=self.monitoring.lag_callback(),
            statistics_interval_ms=self.config.monitoring.kafka_stats_interval_ms,
            on_invalid=self.metrics.invalid_samples.inc if self.metrics is not None else None,
        )
        buffer_limit = {p: 2 * q + trainer.consume_messages for p, q in assembler.quota.items()}
        reader.start()
        self._writer = CheckpointWriter(self.checkpoints.store)
        try:
            last_data = time.monotonic()
            while True:
                cut = cutter.next(idle_s=time.monotonic() - last_data, stopping=self._stopping.is_set())
                if cut.stop:  # checked between passes and while waiting for data
                    break
                if cut.closed is not None:
                    record, manifest = self._train_pass(cut.closed, reader, summary)
                    summary.passes.append(record)
                    summary.manifests.append(manifest)
                    summary.next_pass = manifest.pass_index + 1
                    if options.on_pass is not None:
                        options.on_pass(record, manifest)
                    if options.max_passes and summary.next_pass >= options.max_passes:
                        break
                    continue
                if cut.finished or (options.idle_timeout_s and cut.idle_s > options.idle_timeout_s):
                    break
                chunk = reader.get(timeout_s=0.2)
                if chunk is None:
                    continue
                last_data = time.monotonic()
                assembler.offer(chunk)
                reader.set_paused({p for p in assembler.partitions if assembler.buffered(p) > buffer_limit[p]})
        finally:
            summary.invalid_messages = reader.invalid
            summary.stopped = self._stopping.is_set()
            try:
                self._writer.close()  # the last checkpoint durable (and committed) first
                summary.writes = self._writer.timings
            finally:
                self._writer = None
                reader.close()
                if not options.keep_metrics_endpoint:
                    self.monitoring.stop()
        return summary

    # ------------------------------------------------------------------ one pass
    def _train_pass(
        self, closed: AssembledPass, reader: SampleReader, summary: RunSummary
    ) -> tuple[PassRecord, PassManifest]:
        assert self.model is not None and self.steps is not None
        started = time.perf_counter()
        group, table = self.group, self.model.table
        # 1-2. progressive validation, then training (every rank its rows of the global mini-batches)
        view = GlobalPass.of(closed, group)
        trained = train_pass(
            self.steps, closed.batch, view, self.config.trainer.batch_size, self.schema.task_names,
            self.schema.domains, group,
        )  # fmt: skip
        manifest = closed.manifest
        if group.distributed:
            manifest = merge_manifests([PassManifest.from_dict(m) for m in group.all_gather_json(manifest.to_dict())])
        # 3. table maintenance
        report = table.end_pass(manifest.pass_index, manifest.event_time_max_ms)
        # 4. export: captured now, written by the writer thread before the checkpoint
        exported = time.perf_counter()
        export = self.exporter.prepare(self.model, manifest)
        export_s = time.perf_counter() - exported
        if group.is_root:
            manifest_path = self.paths.run_dir / MANIFESTS_DIR / f"pass-{manifest.pass_index:09d}.json"
            with (
                write_failures_as_user_errors(f"the manifest of pass {manifest.pass_index}"),
                atomic_text_writer(manifest_path) as f,
            ):
                f.write(manifest.to_json())
        duration = time.perf_counter() - started
        stats = table.stats()
        lag = reader.lag(closed.manifest.next_offsets())
        if group.distributed:
            lag = int(group.sum(np.array([lag]))[0])
        record = PassRecord(
            pass_index=manifest.pass_index,
            samples=manifest.samples,
            duration_s=duration,
            samples_per_s=manifest.samples / duration if duration > 0 else 0.0,
            loss=trained.loss,
            auc=trained.validation.auc,
            auc_by_domain=trained.validation.auc_by_domain,
            logloss=trained.validation.logloss,
            logloss_by_domain=trained.validation.logloss_by_domain,
            observed=trained.validation.observed,
            positives=trained.validation.positives,
            positives_by_domain=trained.validation.positives_by_domain,
            logloss_stderr=trained.validation.logloss_stderr,
            table_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            table_rows=stats.rows,
            evictions=dict(report.evictions),
            consumer_lag=lag,
            event_time_min_ms=manifest.event_time_min_ms,
            event_time_max_ms=manifest.event_time_max_ms,
        )
        # 5. checkpoint, the truth for restarts: captured now, durable while the next pass trains; with N
        # ranks committed once every rank's is durable; then 6. offsets to the consumer group (lag
        # monitoring only) and 7. the run log line
        captured = time.perf_counter()
        checkpoint = self._capture_checkpoint(closed, record, manifest, reader, export)
        capture_s = time.perf_counter() - captured
        assert self._writer is not None
        wait_s = self._writer.submit(checkpoint)
        summary.persist.append(PersistTiming(manifest.pass_index, export_s, capture_s, wait_s))
        # 8. metrics
        if group.is_root:
            self.monitoring.publish(record, manifest, stats, getattr(table, "last_shard_stats", []))
            log.info(
                "pass %d: %d samples (%d duplicates dropped) in %.2f s, %.0f samples/s, %d table rows",
                manifest.pass_index, manifest.samples, manifest.duplicates, duration, record.samples_per_s, stats.rows,
            )  # fmt: skip
        return record, manifest

    def _capture_checkpoint(
        self,
        closed: AssembledPass,
        record: PassRecord,
        manifest: PassManifest,
        reader: SampleReader,
        export: PassExport,
    ) -> PassCheckpoint:
        """The pass's checkpoint copied out of the model (a base every K passes, else an increment):
        this rank's table shard, its partitions' offsets; the dense state on rank 0. It carries the
        pass's export, which the writer writes first (with N ranks rank 0 publishes it at the commit)."""
        assert self.model is not None
        group, pass_index = self.group, manifest.pass_index
        if self._base_pass is None or pass_index - self._base_pass >= self.config.trainer.checkpoint_base_every_passes:
            self._base_pass = pass_index
        checkpoints, monitoring, run_dir = self.checkpoints, self.monitoring, self.paths.run_dir
        next_offsets = closed.manifest.next_offsets()

        def on_durable() -> None:  # on the writer thread, once the export and the checkpoint are on disk
            checkpoints.commit(pass_index, export.publish if export.shared and group.is_root else None)
            reader.commit(next_offsets)
            if group.is_root:
                append_pass_record(run_dir, record)
                monitoring.record_checkpoint()

        dedup = self._dedup.closed_passes() if self._dedup is not None else []
        base = self._base_pass == pass_index
        checkpoint = capture_pass_checkpoint(
            self.model, manifest, record, self.topic, dedup, base, on_durable, export, with_dense=group.is_root
        )
        if group.distributed:  # this rank's own read positions, and where they come from
            checkpoint.state["next_offsets"] = {str(p): o for p, o in sorted(next_offsets.items())}
            checkpoint.state.update(world_size=group.world_size, rank=group.rank, partitions=sorted(next_offsets))
        return checkpoint

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self) -> TrainerMetrics | None:
        """The pass metrics (rank 0 while running; None when monitoring is disabled)."""
        return self.monitoring.metrics

    @property
    def table_metrics(self) -> TableMetrics | None:
        """The table metrics (rank 0 while running; None when monitoring is disabled)."""
        return self.monitoring.table_metrics

    def close_metrics(self) -> None:
        """Stop serving the metrics endpoint (done by :meth:`run` unless it was asked to keep it)."""
        self.monitoring.stop()


def read_manifests(run_dir: str | Path) -> list[PassManifest]:
    """Every pass manifest a trainer wrote into ``run_dir``, by pass index."""
    directory = Path(run_dir) / MANIFESTS_DIR
    return [
        PassManifest.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("pass-*.json"))
    ]


__all__ = ["IncrementalTrainer", "RunOptions", "RunSummary", "TrainerPaths", "read_manifests"]
