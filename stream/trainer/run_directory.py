"""The directories a trainer writes, claimed for one run before anything is read or trained.

:meth:`RunDirectories.claim` creates every directory (one line when it cannot), takes an exclusive
lock on each (``fcntl.flock``: a second trainer on the same run directory stops with one line
instead of interleaving ``passes.jsonl``), and removes the temporaries that a trainer killed in
the middle of a write left behind. :func:`check_model_dir` then refuses to start a new model over
a model directory of a trained one: with its checkpoints lost, a run used to start at pass 0 over
a directory of later passes, and pruning then deleted the new passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from embedding_store.export import exported_passes
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.storage.atomic_file import remove_stale_temporaries
from stream.storage.directory_lock import DirectoryBusy, DirectoryLock
from stream.trainer.exporter import TABLE_DIR, exported_pass_indices

log = logging.getLogger(__name__)

MANIFESTS_DIR = "manifests"


@dataclass
class TrainerPaths:
    """Where a trainer writes: run log and manifests, exports, checkpoints."""

    run_dir: Path
    model_dir: Path
    checkpoint_dir: Path

    @staticmethod
    def from_config(config: PipelineConfig, run_dir: str | None = None) -> TrainerPaths:
        """``run_dir`` (given) places everything under it; else trainer.model_dir/checkpoint_dir apply."""
        root = Path(run_dir or config.run_dir)
        trainer = config.trainer
        configured = not run_dir
        model_dir = Path(trainer.model_dir) if trainer.model_dir and configured else root / "model"
        checkpoints = Path(trainer.checkpoint_dir) if trainer.checkpoint_dir and configured else root / "checkpoints"
        return TrainerPaths(run_dir=root, model_dir=model_dir, checkpoint_dir=checkpoints)


class RunDirectories:
    """The run, model and checkpoint directories of one trainer, locked while it runs.

    With N ranks rank 0 holds the locks for every rank (``lock`` false on the others) and each rank
    also cleans its own ``shard_dirs`` (its table shard's exports, its checkpoints)."""

    def __init__(self, paths: TrainerPaths, lock: bool = True, shard_dirs: list[Path] | None = None) -> None:
        self.paths = paths
        self.lock = lock
        self.shard_dirs = list(shard_dirs or [])
        self._locks: list[DirectoryLock] = []

    def claim(self) -> None:
        """Create, lock and clean every directory; :class:`UserError` (one line) when one cannot be."""
        paths = self.paths
        roles = {"run_dir": paths.run_dir, "model_dir": paths.model_dir, "checkpoint_dir": paths.checkpoint_dir}
        for role, directory in roles.items():
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UserError(
                    f"{role} {directory}: cannot create it ({error.strerror}); "
                    "give --run-dir (or run_dir / trainer.model_dir / trainer.checkpoint_dir) a writable directory"
                ) from None
        try:
            for directory in dict.fromkeys(d.resolve() for d in roles.values()) if self.lock else ():
                lock = DirectoryLock(directory)
                lock.acquire()
                self._locks.append(lock)
        except DirectoryBusy as busy:
            self.release()
            raise UserError(
                f"{busy.directory} is in use by another trainer (pid {busy.holder or 'unknown'}); "
                "stop it first, or give this one another --run-dir"
            ) from None
        except OSError as error:
            self.release()
            raise UserError(
                f"cannot lock {error.filename} ({error.strerror}); it must be a writable directory"
            ) from None
        removed = []
        ours = [paths.run_dir, paths.run_dir / MANIFESTS_DIR, paths.model_dir, paths.model_dir / TABLE_DIR,
                paths.checkpoint_dir] if self.lock else []  # fmt: skip
        for directory in ours + self.shard_dirs:
            removed += remove_stale_temporaries(directory)
        if removed:
            log.info("removed %d temporary files left by an interrupted write: %s", len(removed), removed[0].name)

    def release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []


def check_model_dir(paths: TrainerPaths) -> None:
    """Refuse to start a new model (no restorable checkpoint) over a model directory that holds
    exports of a trained one: its checkpoints are gone or live elsewhere, and training on would
    overwrite its passes with a fresh model's and mix two runs in one directory.

    Only pass 0 is tolerated (a crash between the first export and the first checkpoint). With a
    checkpoint, later exports belong to the same model: falling back past damaged checkpoints
    retrains those passes and rewrites their exports.
    """
    exported = exported_pass_indices(paths.model_dir) + exported_passes(paths.model_dir / TABLE_DIR)
    latest = max(exported, default=-1)
    if latest <= 0:
        return
    raise UserError(
        f"{paths.model_dir} holds exports up to pass {latest}, but {paths.checkpoint_dir} has no checkpoint: "
        "resume with that run's checkpoints (trainer.checkpoint_dir), or start fresh in an empty "
        "directory (another --run-dir, or delete the model directory)"
    )
