"""The real KuaiRand-Pure population: users, videos (items), authors and tab (domain) statistics.

Read from the CSV copy shipped in the package, ``stream/simulator/data/kuairand-pure/`` (CC BY-SA 4.0,
see stream/simulator/data/README.md). The CSVs hold quoted fields with commas (e.g.
``"[100,1k)"``), so they are parsed with :mod:`csv`.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

USERS_FILE = "user_features_pure.csv"
VIDEOS_FILE = "video_features_basic_pure.csv"
TABS_FILE = "tab_stats.csv"

FeatureValue = int | str


@dataclass(frozen=True)
class UserTable:
    """One row per real user; ``columns`` maps every CSV column to its per-user values."""

    user_id: np.ndarray  # int64 [U]
    columns: dict[str, list[FeatureValue]]

    def __len__(self) -> int:
        return int(self.user_id.shape[0])


@dataclass(frozen=True)
class VideoTable:
    """One row per real video; ``upload_day_offset`` is days before the newest upload date (0, 1, 2)."""

    item_id: np.ndarray  # int64 [I]
    author_id: np.ndarray  # int64 [I]
    duration_s: np.ndarray  # float64 [I], missing durations filled with the median
    upload_day_offset: np.ndarray  # int64 [I]
    tags: list[list[int]]
    columns: dict[str, list[FeatureValue]]

    def __len__(self) -> int:
        return int(self.item_id.shape[0])


@dataclass(frozen=True)
class DomainStats:
    """Per-domain statistics of ``tab_stats.csv`` for the configured domains (same order)."""

    names: list[str]
    traffic_share: np.ndarray  # float64 [D], exposures renormalised over the configured domains
    click_rate: np.ndarray  # float64 [D], clicks / exposures
    active_user_ratio: np.ndarray  # float64 [D], share of users who ever visit the tab


@dataclass(frozen=True)
class Population:
    users: UserTable
    videos: VideoTable
    domains: DomainStats


def load_population(data_dir: str | Path, domains: list[str]) -> Population:
    """Load users, videos and the stats of ``domains`` (names ``tab<N>``) from ``data_dir``."""
    root = Path(data_dir)
    for name in (USERS_FILE, VIDEOS_FILE, TABS_FILE):
        if not (root / name).is_file():
            raise ValueError(f"data_dir: {root} has no {name} (expected the KuaiRand-Pure CSVs)")
    return Population(
        users=_load_users(root / USERS_FILE),
        videos=_load_videos(root / VIDEOS_FILE),
        domains=_load_domains(root / TABS_FILE, domains),
    )


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader if row]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"{path.name}: row {i + 2} has {len(row)} fields, the header has {len(header)}")
    return header, rows


def _as_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _typed_column(raw: list[str]) -> list[FeatureValue]:
    """Integers when every non-empty value is integral (missing = -1), else strings (missing = UNKNOWN)."""
    parsed = {v: _as_int(v) for v in set(raw) if v != ""}  # columns repeat few distinct values
    if parsed and all(v is not None for v in parsed.values()):
        parsed[""] = -1
        return [parsed[v] for v in raw]  # type: ignore[misc]
    return [v if v != "" else "UNKNOWN" for v in raw]


def _columns(header: list[str], rows: list[list[str]]) -> dict[str, list[FeatureValue]]:
    return {name: _typed_column([row[j] for row in rows]) for j, name in enumerate(header)}


def _load_users(path: Path) -> UserTable:
    header, rows = _read_csv(path)
    columns = _columns(header, rows)
    return UserTable(user_id=np.asarray(columns["user_id"], dtype=np.int64), columns=columns)


def _parse_tags(text: str) -> list[int]:
    tags = [int(t) for t in text.strip("[] ").split(",") if t.strip()]
    return tags or [-1]


def _load_videos(path: Path) -> VideoTable:
    header, rows = _read_csv(path)
    columns = _columns(header, rows)
    raw_duration = np.asarray([float(r[header.index("video_duration")] or "nan") for r in rows]) / 1000.0
    median = float(np.nanmedian(raw_duration))
    duration = np.where(np.isfinite(raw_duration) & (raw_duration > 0), raw_duration, median)
    dates = [dt.date.fromisoformat(r[header.index("upload_dt")][:10]) for r in rows]
    newest = max(dates)
    tags = [_parse_tags(r[header.index("tag")]) for r in rows]
    columns["tag"] = tags  # type: ignore[assignment]
    return VideoTable(
        item_id=np.asarray(columns["video_id"], dtype=np.int64),
        author_id=np.asarray(columns["author_id"], dtype=np.int64),
        duration_s=duration,
        upload_day_offset=np.asarray([(newest - d).days for d in dates], dtype=np.int64),
        tags=tags,
        columns=columns,
    )


def _tab_number(domain: str) -> int:
    if not domain.startswith("tab") or not domain[3:].isdigit():
        raise ValueError(f"domains: the simulator needs KuaiRand tab names like 'tab1', got {domain!r}")
    return int(domain[3:])


def _load_domains(path: Path, domains: list[str]) -> DomainStats:
    header, rows = _read_csv(path)
    by_tab = {int(r[header.index("tab")]): r for r in rows}
    exposures, clicks, active = [], [], []
    for name in domains:
        tab = _tab_number(name)
        if tab not in by_tab:
            raise ValueError(f"domains: {name!r} is not in {path.name} (tabs {sorted(by_tab)})")
        row = by_tab[tab]
        exposures.append(float(row[header.index("exposures")]))
        clicks.append(float(row[header.index("clicks")]))
        active.append(float(row[header.index("active_user_ratio")]))
    exp = np.asarray(exposures)
    return DomainStats(
        names=list(domains),
        traffic_share=exp / exp.sum(),
        click_rate=np.asarray(clicks) / exp,
        active_user_ratio=np.asarray(active),
    )
