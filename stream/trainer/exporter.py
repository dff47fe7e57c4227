"""Publish a trained pass: table delta/snapshot + dense weights, then flip ``LATEST`` atomically.

Layout of ``model_dir``::

    table/snapshot-<pass>.npz, table/delta-<pass>.npz   embedding rows (EmbeddingTable.export)
    table/shard-<r>-of-<N>/...                          the same, per shard, for a run of N ranks
    pass-<pass>/dense.pt                                network + domain statistics (tensors only)
    pass-<pass>/model.json                              schema, model config, embedding width, the
                                                        table directory (table_dir) or shard
                                                        directories (table_dirs)
    pass-<pass>/manifest.json                           the pass manifest
    pass-<pass>/CHECKSUMS.json                          SHA-256 of the three files above
    LATEST                                              "pass-<pass>", replaced atomically

A reader (``stream.scoring.model_files``) follows ``LATEST`` to a pass directory it verifies, and
reads the table chain (newest snapshot + deltas) up to that pass only. A pass directory is
written with ``stream.storage.atomic_file.atomic_directory`` (temporary name, fsync, rename), so
``LATEST`` never names a partial directory. A crash after the table export of pass k but before
``LATEST`` moves leaves the chain one pass ahead of ``LATEST`` (readers ignore it) until the
restarted trainer re-runs pass k, which rewrites the same files. With N ranks every rank writes its
table shard; rank 0 publishes the pass directory and ``LATEST`` once every shard is written (the
commit, ``run_checkpoints``). Table directories that no kept pass directory names (another world
size's) are deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_store.export import TableExport
from embedding_store.sharding import shard_dir_name
from stream.storage.atomic_file import atomic_directory, atomic_text_writer
from stream.storage.checksums import write_checksums
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel, write_dense_state

LATEST_FILE = "LATEST"
TABLE_DIR = "table"
PASS_FORMAT = 1  # format of a pass directory's CHECKSUMS.json
DENSE_FILE = "dense.pt"
DESCRIPTION_FILE = "model.json"
_PASS_NAME = re.compile(r"^pass-(\d{9})$")


@dataclass
class PassExport:
    """One pass's export copied out of the model, ready to write. With N ranks (``shared``) the
    pass directory is published apart, by rank 0 once every rank wrote its table shard; the other
    ranks carry no dense weights."""

    exporter: ModelExporter
    pass_index: int
    table: TableExport
    dense: dict[str, Any] | None
    description: dict[str, Any]
    manifest_json: str
    shared: bool = False

    def write(self) -> None:
        """Write the table export, then (one process) the pass directory and ``LATEST``."""
        self.table.write()
        if not self.shared:
            self.publish()

    def publish(self) -> Path:
        """Write the pass directory, then move ``LATEST``; returns the directory."""
        assert self.dense is not None, "the pass directory is published by rank 0"
        model_dir = self.exporter.model_dir
        final = model_dir / pass_dir_name(self.pass_index)
        # An existing directory of the same pass: re-export after a crash before its checkpoint.
        with atomic_directory(final) as tmp:
            write_dense_state(self.dense, tmp / DENSE_FILE)
            (tmp / DESCRIPTION_FILE).write_text(json.dumps(self.description, indent=1, sort_keys=True), "utf-8")
            (tmp / "manifest.json").write_text(self.manifest_json, encoding="utf-8")
            write_checksums(tmp, {"format": PASS_FORMAT, "pass_index": self.pass_index})
        with atomic_text_writer(model_dir / LATEST_FILE) as latest:
            latest.write(final.name + "\n")
        self.exporter.prune(self.pass_index)
        return final


def pass_dir_name(pass_index: int) -> str:
    """Name of the export directory of ``pass_index`` inside ``model_dir``."""
    return f"pass-{pass_index:09d}"


class ModelExporter:
    """Writes exports into ``model_dir`` and keeps the newest ``keep`` pass directories; with
    ``shards`` > 1 this is rank ``shard``'s exporter (its table shard; rank 0 the pass directory)."""

    def __init__(self, model_dir: str | os.PathLike[str], keep: int = 5, shard: int = 0, shards: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.keep = keep
        self.shard = shard
        self.table_dirs = [TABLE_DIR]
        if shards > 1:
            self.table_dirs = [f"{TABLE_DIR}/{shard_dir_name(s, shards)}" for s in range(shards)]
        self.shard_dir = self.model_dir / self.table_dirs[shard if shards > 1 else 0]  # this rank's table files

    def export(self, model: TrainingModel, manifest: PassManifest) -> Path:
        """Export the model after ``manifest``'s pass (one process); returns the pass directory."""
        export = self.prepare(model, manifest)
        export.write()
        return self.model_dir / pass_dir_name(manifest.pass_index)

    def prepare(self, model: TrainingModel, manifest: PassManifest) -> PassExport:
        """Copy the export of ``manifest``'s pass out of ``model`` (the changed rows, the dense
        weights); :meth:`PassExport.write` writes it later, from any thread."""
        index = manifest.pass_index
        self.model_dir.mkdir(parents=True, exist_ok=True)
        description = dict(model.describe(), pass_index=index, table_dir=TABLE_DIR)
        if len(self.table_dirs) > 1:
            description["table_dirs"] = self.table_dirs
        return PassExport(
            exporter=self,
            pass_index=index,
            table=model.table.capture_export(self.model_dir / TABLE_DIR, index),
            dense=model.dense_snapshot(with_optimizer=False) if self.shard == 0 else None,
            description=description,
            manifest_json=manifest.to_json(),
            shared=len(self.table_dirs) > 1,
        )

    def prune(self, current: int) -> None:
        """Keep the pass just exported and the ``keep - 1`` newest before it, by pass index; a pass
        directory after ``current`` is never deleted (a trainer refuses such a model_dir at start).
        Then delete the table directories that no kept pass directory names (another world size's)."""
        older = [i for i in exported_pass_indices(self.model_dir) if i < current]
        for index in older[: max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(self.model_dir / pass_dir_name(index), ignore_errors=True)
        named = set(self.table_dirs)
        for index in exported_pass_indices(self.model_dir):
            try:
                description = (self.model_dir / pass_dir_name(index) / DESCRIPTION_FILE).read_text(encoding="utf-8")
                named.update(table_dirs(json.loads(description)))
            except (OSError, ValueError):
                continue  # a damaged pass directory names nothing worth keeping
        table = self.model_dir / TABLE_DIR
        if TABLE_DIR not in named:
            for path in table.glob("*.npz"):
                path.unlink(missing_ok=True)
        for path in table.glob("shard-*-of-*"):
            if f"{TABLE_DIR}/{path.name}" not in named:
                shutil.rmtree(path, ignore_errors=True)


def exported_pass_indices(model_dir: str | os.PathLike[str]) -> list[int]:
    """Pass indices of the ``pass-NNNNNNNNN`` directories in ``model_dir``, in increasing order."""
    directory = Path(model_dir)
    if not directory.is_dir():
        return []
    found = (_PASS_NAME.match(p.name) for p in directory.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def table_dirs(description: dict) -> list[str]:
    """The table directories (relative to the model directory) that a pass's ``model.json`` names:
    one for a table exported by one process, one per shard for N ranks."""
    return list(description.get("table_dirs") or [description.get("table_dir", TABLE_DIR)])
