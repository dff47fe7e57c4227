"""Reading an exported model directory safely: ``LATEST``, a pass directory, its dense weights.

Every reader of exports (``pepnet score``, ``pepnet serve``) goes through here, so that each one
follows ``LATEST`` only inside the model directory, verifies a pass directory against its
``CHECKSUMS.json`` before using it, and reads the table chain up to that pass only (a table
export written after ``LATEST`` moved is never mixed in). Every failure is a
:class:`ModelFileError` with a one-line message and a reason (a metric label).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embedding_store.sharding import parse_shard_dir_name
from stream.config.errors import UserError
from stream.storage.checksums import read_checksums, sha256_bytes, verify_checksums
from stream.trainer.exporter import (
    DENSE_FILE,
    DESCRIPTION_FILE,
    LATEST_FILE,
    PASS_FORMAT,
    TABLE_DIR,
    pass_dir_name,
    table_dirs,
)

_PASS_NAME = re.compile(r"^pass-(\d{9})$")


class ModelFileError(UserError):
    """An export that cannot be used; ``reason``: missing, damaged, outside_model_dir or unreadable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PassFiles:
    """A verified pass directory: its index, path, table directories (one, or one per shard of a
    table exported by N ranks; relative to the model directory) and ``model.json`` description."""

    pass_index: int
    path: Path
    table_dirs: list[str]
    description: dict[str, Any]


def latest_pass(model_dir: Path) -> PassFiles:
    """The pass ``LATEST`` names, verified; ``LATEST`` must name a ``pass-NNNNNNNNN`` directory of
    ``model_dir`` itself (never a path that leads elsewhere)."""
    pointer = Path(model_dir) / LATEST_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ModelFileError("missing", f"{model_dir} has no {LATEST_FILE} file: nothing exported there yet") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError("unreadable", f"cannot read {pointer} ({error})") from None
    match = _PASS_NAME.match(name)
    if match is None:
        raise ModelFileError(
            "outside_model_dir", f"{pointer} names {name[:80]!r}, not a pass-NNNNNNNNN directory of {model_dir}"
        )
    return pass_files(model_dir, int(match.group(1)))


def pass_files(model_dir: Path, pass_index: int) -> PassFiles:
    """The exported pass ``pass_index`` of ``model_dir``, verified against its checksums."""
    model_dir = Path(model_dir)
    path = model_dir / pass_dir_name(pass_index)
    if path.is_symlink() or (path.exists() and path.resolve().parent != model_dir.resolve()):
        raise ModelFileError("outside_model_dir", f"{path} leads outside {model_dir}; not followed")
    if not path.is_dir():
        raise ModelFileError("missing", f"{path} does not exist (pruned, or LATEST written by hand?)")
    problem = verify_checksums(path, PASS_FORMAT)
    if problem is not None:
        raise ModelFileError("damaged", f"{path} is damaged: {problem}")
    try:
        description = json.loads((path / DESCRIPTION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFileError("damaged", f"{path / DESCRIPTION_FILE} unreadable ({error})") from None
    if not isinstance(description, dict) or description.get("pass_index") != pass_index:
        raise ModelFileError("damaged", f"{path / DESCRIPTION_FILE} does not describe pass {pass_index}")
    names = table_dirs(description)
    for name in names:
        parts = Path(name).parts if isinstance(name, str) else ()
        shard = len(parts) == 2 and parse_shard_dir_name(parts[1]) is not None
        if not parts or parts[0] != TABLE_DIR or not (len(parts) == 1 or shard):
            raise ModelFileError("outside_model_dir", f"{path / DESCRIPTION_FILE} names table directory {name!r}")
    return PassFiles(pass_index, path, names, description)


def read_dense_state(pass_dir: Path) -> dict[str, Any]:
    """The dense weights of a verified pass directory, read once and checked against the manifest
    (the bytes checked are the bytes loaded), tensors only (``weights_only=True``)."""
    path = Path(pass_dir) / DENSE_FILE
    try:
        data = path.read_bytes()
        expected = read_checksums(pass_dir)["files"].get(DENSE_FILE)
    except (OSError, ValueError) as error:
        raise ModelFileError("unreadable", f"cannot read {path} ({error})") from None
    if sha256_bytes(data) != expected:
        raise ModelFileError("damaged", f"{path} fails its checksum")
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception as error:  # torch raises many types on malformed archives
        raise ModelFileError("damaged", f"{path} is not a dense-weights file ({error.__class__.__name__})") from None
