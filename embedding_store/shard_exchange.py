"""Rows moved between the processes of a sharded table, over a ``torch.distributed`` process group.

A request is two collectives, as in TorchRec's input distribution: first every rank tells every
other how many rows it will send (``all_to_all_single`` of N counts), then the rows travel
(``all_to_all_single`` with uneven splits). The reply goes back along the same route with the
counts swapped, so it needs no count exchange. The gloo backend implements ``all_to_all_single``
with uneven splits for CPU tensors (checked with torch 2.15 on loopback), so no all_gather
fallback is needed; NCCL does too. Rows of any numpy dtype travel as raw bytes (a uint8 tensor
per row), so keys, slots and float payloads keep their exact bits.

Every method is a collective: all ranks of the group call the same methods in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Route:
    """Where the rows of one request go: ``order`` sorts them by destination rank (stable), then
    ``send_counts[r]`` rows go to rank r and ``recv_counts[r]`` rows arrive from rank r."""

    order: np.ndarray
    send_counts: list[int]
    recv_counts: list[int]


class ShardExchange:
    """Collectives of one process group (``group`` None = the default group; no group at all when
    torch.distributed is not initialised, which acts as a group of one)."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(group) if distributed else 0
        self.world_size = dist.get_world_size(group) if distributed else 1

    # ----------------------------------------------------------------- point to point by rank
    def route(self, destinations: np.ndarray) -> Route:
        """Exchange the row counts of a request whose row i goes to rank ``destinations[i]``."""
        destinations = np.asarray(destinations, dtype=np.int64)
        order = np.argsort(destinations, kind="stable")
        send = np.bincount(destinations, minlength=self.world_size).astype(np.int64)
        if self.world_size == 1:
            return Route(order, send.tolist(), send.tolist())
        received = torch.empty(self.world_size, dtype=torch.int64)
        dist.all_to_all_single(received, torch.from_numpy(send), group=self.group)
        return Route(order, send.tolist(), received.tolist())

    def forward(self, route: Route, rows: np.ndarray) -> np.ndarray:
        """Send ``rows`` (one per request row, in request order) to their ranks; returns the rows
        this rank received, grouped by source rank in rank order."""
        return self._exchange(np.ascontiguousarray(rows[route.order]), route.send_counts, route.recv_counts)

    def backward(self, route: Route, replies: np.ndarray) -> np.ndarray:
        """Return one reply per received row (in received order) to its sender; returns this rank's
        replies in its own request order."""
        answered = self._exchange(np.ascontiguousarray(replies), route.recv_counts, route.send_counts)
        out = np.empty_like(answered)
        out[route.order] = answered
        return out

    def _exchange(self, rows: np.ndarray, send_counts: list[int], recv_counts: list[int]) -> np.ndarray:
        if self.world_size == 1:
            return rows.copy()
        payload = _row_bytes(rows)
        received = torch.empty((sum(recv_counts), payload.shape[1]), dtype=torch.uint8)
        dist.all_to_all_single(received, torch.from_numpy(payload), recv_counts, send_counts, group=self.group)
        return _from_row_bytes(received.numpy(), rows)

    # ----------------------------------------------------------------- everyone to everyone
    def all_gather_arrays(self, rows: np.ndarray) -> list[np.ndarray]:
        """Every rank's ``rows`` (any length along axis 0, same dtype and row shape), by rank."""
        rows = np.ascontiguousarray(rows)
        if self.world_size == 1:
            return [rows.copy()]
        payload = _row_bytes(rows)
        lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        dist.all_gather(lengths, torch.tensor([rows.shape[0]], dtype=torch.int64), group=self.group)
        counts = [int(n.item()) for n in lengths]
        longest = max(counts)
        padded = np.zeros((longest, payload.shape[1]), dtype=np.uint8)
        padded[: rows.shape[0]] = payload
        gathered = torch.empty((self.world_size * longest, payload.shape[1]), dtype=torch.uint8)
        dist.all_gather_into_tensor(gathered, torch.from_numpy(padded), group=self.group)
        parts = gathered.numpy().reshape(self.world_size, longest, payload.shape[1])
        return [_from_row_bytes(parts[r, : counts[r]], rows) for r in range(self.world_size)]

    def all_gather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data``, by rank (for small JSON documents: statistics, manifests)."""
        return [part.tobytes() for part in self.all_gather_arrays(np.frombuffer(data, dtype=np.uint8))]

    def broadcast_bytes(self, data: bytes | None, source: int = 0) -> bytes:
        """``data`` of rank ``source`` on every rank (the others pass anything, e.g. None)."""
        return self.all_gather_bytes(data if self.rank == source and data is not None else b"")[source]

    def barrier(self) -> None:
        """Return once every rank of the group has called it."""
        if self.world_size > 1:
            dist.barrier(group=self.group)


def _row_bytes(rows: np.ndarray) -> np.ndarray:
    """uint8 ``[n, bytes per row]`` view of the contiguous ``rows`` (n may be 0)."""
    width = rows.dtype.itemsize * int(np.prod(rows.shape[1:], dtype=np.int64))
    return np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], width)


def _from_row_bytes(data: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Rows of ``like``'s dtype and row shape from their uint8 ``[n, bytes per row]`` (a copy)."""
    return np.ascontiguousarray(data).copy().view(like.dtype).reshape((data.shape[0], *like.shape[1:]))
