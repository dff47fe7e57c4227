"""A table split by key hash over N shards: which shard owns a key, and each shard's configuration.

The owner of a key is ``shard_of(key, N)``: a splitmix64 hash of the key (salted so that it is
independent of the index's own hashing) reduced to ``[0, N)``; it depends on nothing but the key
and N, so every process on every machine agrees. Each shard gets ``1/N`` of the byte budget, of
every per-feature row limit and of an explicit admission-filter size; everything else (learning
rate, scores, expiry, seed: a key's initial row is the same in every shard layout) is shared.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from embedding_store.config import TableConfig
from embedding_store.keys import mix64

_OWNER_SALT = np.uint64(0x2F6D1C8E4B3A5F97)
_SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """int64 owner shard in ``[0, shards)`` of each uint64 key."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    flat = np.asarray(keys, dtype=np.uint64)
    if shards == 1:
        return np.zeros(flat.shape, dtype=np.int64)
    high = mix64(flat ^ _OWNER_SALT) >> np.uint64(32)
    return ((high * np.uint64(shards)) >> np.uint64(32)).astype(np.int64)  # multiply-shift: no modulo bias


def split_evenly(total: int, shard: int, shards: int) -> int:
    """Shard ``shard``'s part of ``total`` when it is split into ``shards`` parts that sum to it."""
    base, extra = divmod(total, shards)
    return base + (1 if shard < extra else 0)


def shard_config(config: TableConfig, shard: int, shards: int) -> TableConfig:
    """The configuration of shard ``shard`` of ``shards``: budget, feature limits and an explicit
    admission-filter size split evenly (parts that sum to the whole)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, {shards}), got {shard}")
    if shards == 1:
        return config
    filter_bytes = config.admission_filter_bytes
    return dataclasses.replace(
        config,
        budget_bytes=split_evenly(config.budget_bytes, shard, shards),
        feature_limits={name: split_evenly(limit, shard, shards) for name, limit in config.feature_limits.items()},
        admission_filter_bytes=max(64, split_evenly(filter_bytes, shard, shards)) if filter_bytes else 0,
    )


def shard_dir_name(shard: int, shards: int) -> str:
    """Directory name of one shard's files (exports, checkpoints): ``shard-<r>-of-<N>``."""
    return f"shard-{shard}-of-{shards}"


def parse_shard_dir_name(name: str) -> tuple[int, int] | None:
    """(shard, shards) of a name written by :func:`shard_dir_name`, else None."""
    match = _SHARD_DIR.match(name)
    if match is None:
        return None
    shard, shards = int(match.group(1)), int(match.group(2))
    return (shard, shards) if 0 <= shard < shards else None
