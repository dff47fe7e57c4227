"""Drop sample ids already trained on: the ids of the current and the last K passes (bounded memory)."""

from __future__ import annotations

from collections import deque

import numpy as np


class DedupWindow:
    """Remembers the sample ids of the last ``passes`` closed passes plus the one being assembled.

    Memory is bounded by ``(passes + 1) * pass size`` ids. A duplicate produced by a joiner crash
    sits close to its first copy in the same partition, so a few passes of memory catch it.
    """

    def __init__(self, passes: int, history: list[list[str]] | None = None) -> None:
        if passes < 0:
            raise ValueError(f"passes must be >= 0, got {passes}")
        self.passes = passes
        self._closed: deque[set[str]] = deque(maxlen=passes or None)
        for ids in (history or [])[-passes:] if passes else []:
            self._closed.append(set(ids))

    def keep_mask(self, sample_ids: list[str]) -> np.ndarray:
        """bool mask, True for the first sighting of each id (in order) not seen in earlier passes."""
        seen: set[str] = set()
        keep = np.ones(len(sample_ids), dtype=bool)
        for i, sid in enumerate(sample_ids):
            if sid in seen or any(sid in ids for ids in self._closed):
                keep[i] = False
            else:
                seen.add(sid)
        return keep

    def close_pass(self, sample_ids: list[str]) -> None:
        """Record the ids of a pass that was just assembled (its kept ids)."""
        if self.passes:
            self._closed.append(set(sample_ids))

    def closed_passes(self) -> list[set[str]]:
        """The remembered passes' id sets, oldest first (the sets themselves: never changed once closed)."""
        return list(self._closed)

    def history(self) -> list[list[str]]:
        """The remembered ids, oldest pass first, sorted within a pass (for the checkpoint)."""
        return [sorted(ids) for ids in self._closed]
