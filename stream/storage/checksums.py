"""SHA-256 manifests of directories: ``CHECKSUMS.json`` lists every other file's digest.

A directory written with a manifest (a checkpoint, an exported pass) is verified by recomputing
every digest: a missing, extra, truncated or bit-flipped file is named in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CHECKSUMS_FILE = "CHECKSUMS.json"


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_checksums(directory: str | os.PathLike[str]) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``directory`` (sorted), the manifest excluded."""
    root = Path(directory)
    sums = {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    sums.pop(CHECKSUMS_FILE, None)
    return sums


def write_checksums(directory: str | os.PathLike[str], header: dict[str, Any]) -> None:
    """Write ``CHECKSUMS.json`` into ``directory``: ``header`` plus the digest of every file there."""
    sums = dict(header, files=tree_checksums(directory))
    Path(directory, CHECKSUMS_FILE).write_text(json.dumps(sums, indent=1, sort_keys=True), encoding="utf-8")


def read_checksums(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``directory``; ValueError naming the problem when it cannot be read."""
    try:
        sums = json.loads(Path(directory, CHECKSUMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{CHECKSUMS_FILE} unreadable ({error.__class__.__name__})") from None
    if not isinstance(sums, dict) or not isinstance(sums.get("files"), dict):
        raise ValueError(f"{CHECKSUMS_FILE} holds no file list")
    return sums


def verify_checksums(directory: str | os.PathLike[str], expected_format: int) -> str | None:
    """None if every file of ``directory`` matches its manifest, else the first problem found."""
    try:
        sums = read_checksums(directory)
    except ValueError as error:
        return str(error)
    if sums.get("format") != expected_format:
        return f"format {sums.get('format')!r}, expected {expected_format}"
    actual = tree_checksums(directory)
    expected = sums["files"]
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            return f"{name} is missing"
        if name not in expected:
            return f"{name} is not listed in {CHECKSUMS_FILE}"
        if actual[name] != expected[name]:
            return f"{name} fails its checksum"
    return None
