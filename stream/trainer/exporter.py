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
import shutil
from pathlib import Path

from stream.storage.atomic_file import atomic_directory, atomic_text_writer
from stream.storage.checksums import write_checksums
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel

LATEST_FILE = "LATEST"
TABLE_DIR = "table"
PASS_FORMAT = 1  # format of a pass directory's CHECKSUMS.json
DENSE_FILE = "dense.pt"
DESCRIPTION_FILE = "model.json"


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
        index = manifest.pass_index
        self.model_dir.mkdir(parents=True, exist_ok=True)
        model.table.export(self.model_dir / TABLE_DIR, index)
        final = self.model_dir / pass_dir_name(index)
        # An existing directory of the same pass: re-export after a crash before its checkpoint.
        with atomic_directory(final) as tmp:
            model.save_dense(tmp / DENSE_FILE, with_optimizer=False)
            description = dict(model.describe(), pass_index=index, table_dir=TABLE_DIR)
            (tmp / DESCRIPTION_FILE).write_text(json.dumps(description, indent=1, sort_keys=True), encoding="utf-8")
            (tmp / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
            write_checksums(tmp, {"format": PASS_FORMAT, "pass_index": index})
        with atomic_text_writer(self.model_dir / LATEST_FILE) as latest:
            latest.write(final.name + "\n")
        self._prune()
        return final

    def _prune(self) -> None:
        passes = sorted(p for p in self.model_dir.glob("pass-*") if p.is_dir())
        for path in passes[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)
