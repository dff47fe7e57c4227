"""Decoder processes: the sample reader's JSON decoding off the training process's GIL.

``trainer.decoder_processes`` = N > 0 starts N processes (``python -m
stream.trainer.decoder_process``, a new interpreter: no librdkafka or torch thread is ever
forked, and unlike multiprocessing's *spawn* the child never re-imports the parent's
``__main__``, which in a script that imports torch cost 1.1 s of start-up per process), each
running the unchanged :class:`ChunkDecoder` on the raw message values of the partition chunks
sent to it, round robin. A collector thread in the training process receives the decoded chunks
in the order they were submitted (so the reader hands them on exactly as it would have decoded
them itself) and passes them to ``deliver``. The transport is :mod:`stream.trainer.chunk_wire`
(bytes frames and numpy buffers over pipes, no pickle of message-derived data; pipes rather than
shared memory because they need no lifecycle of their own: a process that dies closes its ends,
which the other side sees as EOF).

Bounded: at most ``in_flight_per_process`` chunks per process are submitted and not yet
delivered; ``submit`` blocks beyond that. Shutdown: the processes run in their own session (a
terminal's Ctrl-C reaches only the trainer, which finishes its pass, then calls :meth:`close`);
they exit when their request pipe closes, which also happens when the training process dies
(even by SIGKILL), so none is ever left behind. A failure in a process, or its unexpected end,
reaches ``fail`` as one :class:`DecoderProcessError` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import numpy as np

from pepnet.batch import SampleBatch
from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.trainer.chunk_wire import DecoderFailed, receive_decoded, send_schema, send_values

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0  # seconds close() waits for the chunks in flight and the processes' exit before killing


class DecoderProcessError(UserError):
    """A decoder process failed or ended unexpectedly (one line: what happened and what to do)."""


@dataclass
class _Process:
    index: int
    process: subprocess.Popen
    requests: Connection  # write end: raw values to the process
    results: Connection  # read end: decoded chunks from it


Deliver = Callable[[Hashable, np.ndarray, "SampleBatch | None", int], None]


class DecoderProcesses:
    """``processes`` decoder processes for one schema; see the module docstring.

    ``deliver(context, kept, batch, invalid)`` receives each decoded chunk in submission order (on
    the collector thread), with the ``context`` given to :meth:`submit`; ``fail(error)`` receives
    the first failure, after which nothing more is delivered.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        processes: int,
        deliver: Deliver,
        fail: Callable[[BaseException], None],
        in_flight_per_process: int = 2,
    ) -> None:
        if processes <= 0:
            raise ValueError(f"processes must be > 0, got {processes}")
        self._deliver, self._fail = deliver, fail
        self._limit = processes * in_flight_per_process
        self._in_flight: deque[tuple[_Process, Hashable]] = deque()
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._reaping = threading.Lock()
        self._submitted = 0
        level = logging.getLogger("stream").getEffectiveLevel()
        self._processes: list[_Process] = []
        try:
            for index in range(processes):
                self._processes.append(_start_process(index, schema, level))
        except BaseException:
            self._end_processes(grace_s=0.0)
            raise
        self._collector = threading.Thread(target=self._collect, name="decoder-results", daemon=True)
        self._collector.start()

    @property
    def pids(self) -> list[int]:
        """The decoder processes' ids."""
        return [p.process.pid for p in self._processes]

    def submit(self, values: list[bytes | None], context: Hashable, stop: threading.Event) -> bool:
        """Send one chunk's raw values to the next process (blocks while the limit is in flight);
        False, and nothing sent, if ``stop`` was set or the processes are closing. One thread submits."""
        with self._changed:
            while len(self._in_flight) >= self._limit:
                if stop.is_set() or self._closing.is_set():
                    return False
                self._changed.wait(0.1)
            target = self._processes[self._submitted % len(self._processes)]
            self._submitted += 1
            self._in_flight.append((target, context))
            self._changed.notify_all()
        try:
            send_values(target.requests, values)  # may wait while the process finishes its previous chunk
        except OSError:
            raise self._error(self._ended(target)) from None
        return True

    def close(self) -> None:
        """Let the chunks in flight finish (not delivered once ``deliver`` refuses them), end the
        processes (closing their request pipes; killed after ``STOP_GRACE_S``), stop the collector."""
        self._closing.set()
        with self._changed:
            self._changed.notify_all()
        self._collector.join(timeout=STOP_GRACE_S)
        self._end_processes(grace_s=STOP_GRACE_S)
        self._collector.join(timeout=STOP_GRACE_S)
        if not self._collector.is_alive():  # else it may still read one: closed when collected
            for p in self._processes:
                p.results.close()

    def _end_processes(self, grace_s: float) -> None:
        for p in self._processes:
            p.requests.close()  # EOF: the process exits after its current chunk
        for p in self._processes:
            try:
                p.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("decoder process %d (pid %s) did not exit within %.0f s: killed", p.index, p.process.pid,
                            grace_s)  # fmt: skip
                p.process.kill()
                p.process.wait(timeout=5)

    def _collect(self) -> None:
        while True:
            with self._changed:
                if not self._in_flight and self._closing.is_set():
                    return
                head = self._in_flight[0] if self._in_flight else None
            if head is None:
                if not self._watch_idle():
                    return
                continue
            source, context = head
            received = self._receive(source)
            if received is None:
                return
            kept, batch, invalid = received
            with self._changed:
                self._in_flight.popleft()
                self._changed.notify_all()
            self._deliver(context, kept, batch, invalid)

    def _watch_idle(self) -> bool:
        """Nothing in flight: wait up to 0.1 s for a process to end or report a failure (its result
        pipe turns readable), so that a decoder lost while the topic is idle is noticed too; False
        once that was reported."""
        ready = wait([p.results for p in self._processes], timeout=0.1)
        if not ready:
            return True
        with self._changed:
            if self._in_flight:  # submitted meanwhile: what was readable is read in order
                return True
        # Nothing was in flight when the pipe turned readable: what it holds is a failure or EOF.
        source = next(p for p in self._processes if p.results in ready)
        if self._receive(source) is not None:
            self._report(f"decoder process {source.index} (pid {source.process.pid}) sent a chunk nobody submitted")
        return False

    def _receive(self, source: _Process) -> tuple[np.ndarray, SampleBatch | None, int] | None:
        """The next decoded chunk from ``source``; None once its failure or end is reported."""
        try:
            return receive_decoded(source.results)
        except DecoderFailed as error:
            self._report(f"decoder process {source.index} (pid {source.process.pid}) failed: {error}")
        except (EOFError, OSError):
            self._report(self._ended(source))
        return None

    def _ended(self, source: _Process) -> str:
        with self._reaping:  # the reader and the collector threads may both find it gone
            try:
                code = source.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                code = None
        how = f"exit code {code}" if code is None or code >= 0 else f"killed by {signal.Signals(-code).name}"
        return f"decoder process {source.index} (pid {source.process.pid}) ended unexpectedly ({how})"

    def _report(self, line: str) -> None:
        if not self._closing.is_set():  # else ended by close(): nothing waits for its chunks
            self._fail(self._error(line))

    @staticmethod
    def _error(line: str) -> DecoderProcessError:
        return DecoderProcessError(
            f"{line}; restart the trainer (it resumes from its last checkpoint), or set "
            "trainer.decoder_processes: 0 to decode in the trainer's own process"
        )


def _start_process(index: int, schema: FeatureSchema, log_level: int) -> _Process:
    """Start decoder process ``index`` (see :mod:`stream.trainer.decoder_process`) and send it the schema."""
    request_read, request_write = os.pipe()
    result_read, result_write = os.pipe()
    command = [sys.executable, "-P", "-m", "stream.trainer.decoder_process", str(request_read), str(result_write),
               str(index), str(log_level)]  # fmt: skip
    # The child imports our modules from where this process found them (as multiprocessing does),
    # and nothing from its working directory (-P).
    path = os.pathsep.join(p or os.getcwd() for p in sys.path)
    try:
        process = subprocess.Popen(
            command, pass_fds=(request_read, result_write), stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip
    except BaseException:
        for fd in (request_read, request_write, result_read, result_write):
            os.close(fd)
        raise
    os.close(request_read)  # the process holds these ends now
    os.close(result_write)
    requests, results = Connection(request_write, readable=False), Connection(result_read, writable=False)
    with contextlib.suppress(OSError):  # it ended already: the first submit or the collector says how
        send_schema(requests, schema)  # a few KiB: fits in the pipe, never waits for the process
    return _Process(index, process, requests, results)
