"""Publish a trained pass: table delta/snapshot + dense weights, then flip ``LATEST`` atomically.

Layout of ``model_dir``::

    table/snapshot-<pass>.npz, table/delta-<pass>.npz   embedding rows (EmbeddingTable.export)
    pass-<pass>/dense.pt                                network + domain statistics (tensors only)
    pass-<pass>/model.json                              schema, model config, embedding width
    pass-<pass>/manifest.json                           the pass manifest
    pass-<pass>/CHECKSUMS.json                          SHA-256 of the three files above
    LATEST                                              "pass-<pass>", replaced atomically

A reader (``stream.scoring.model_files``) follows ``LATEST`` to a pass directory it verifies, and
reads the table chain (newest snapshot + deltas) up to that pass only. A pass directory is
written with ``stream.storage.atomic_file.atomic_directory`` (temporary name, fsync, rename), so
``LATEST`` never names a partial directory. A crash after the table export of pass k but before
``LATEST`` moves leaves the chain one pass ahead of ``LATEST`` (readers ignore it) until the
restarted trainer re-runs pass k, which rewrites the same files.
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
    """One pass's export copied out of the model, ready to write."""

    exporter: ModelExporter
    pass_index: int
    table: TableExport
    dense: dict[str, Any]
    description: dict[str, Any]
    manifest_json: str

    def write(self) -> Path:
        """Write the table export, then the pass directory, then move ``LATEST``; returns the directory."""
        model_dir = self.exporter.model_dir
        self.table.write()
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
    """Writes exports into ``model_dir`` and keeps the newest ``keep`` pass directories."""

    def __init__(self, model_dir: str | os.PathLike[str], keep: int = 5) -> None:
        self.model_dir = Path(model_dir)
        self.keep = keep

    def export(self, model: TrainingModel, manifest: PassManifest) -> Path:
        """Export the model after ``manifest``'s pass; returns the pass directory."""
        return self.prepare(model, manifest).write()

    def prepare(self, model: TrainingModel, manifest: PassManifest) -> PassExport:
        """Copy the export of ``manifest``'s pass out of ``model`` (the changed rows, the dense
        weights); :meth:`PassExport.write` writes it later, from any thread."""
        index = manifest.pass_index
        self.model_dir.mkdir(parents=True, exist_ok=True)
        return PassExport(
            exporter=self,
            pass_index=index,
            table=model.table.capture_export(self.model_dir / TABLE_DIR, index),
            dense=model.dense_snapshot(with_optimizer=False),
            description=dict(model.describe(), pass_index=index, table_dir=TABLE_DIR),
            manifest_json=manifest.to_json(),
        )

    def prune(self, current: int) -> None:
        """Keep the pass just exported and the ``keep - 1`` newest before it, by pass index; a pass
        directory after ``current`` is never deleted (a trainer refuses such a model_dir at start)."""
        older = [i for i in exported_pass_indices(self.model_dir) if i < current]
        for index in older[: max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(self.model_dir / pass_dir_name(index), ignore_errors=True)


def exported_pass_indices(model_dir: str | os.PathLike[str]) -> list[int]:
    """Pass indices of the ``pass-NNNNNNNNN`` directories in ``model_dir``, in increasing order."""
    directory = Path(model_dir)
    if not directory.is_dir():
        return []
    found = (_PASS_NAME.match(p.name) for p in directory.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)
