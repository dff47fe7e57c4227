"""The program of one decoder process: ``python -m stream.trainer.decoder_process REQUESTS RESULTS INDEX LEVEL``.

Started by :class:`~stream.trainer.decoder_processes.DecoderProcesses` with two pipe ends as file
descriptors: ``REQUESTS`` (read: the schema, then chunks of raw message values) and ``RESULTS``
(write: decoded chunks), both in the :mod:`stream.trainer.chunk_wire` format. It runs the
unchanged :class:`ChunkDecoder` until ``REQUESTS`` closes, which also happens when the training
process dies, even by SIGKILL. A failure is sent back as one line and ends the process (exit 1).
It imports numpy, msgspec and the schema's modules only (no torch, no Kafka client).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from multiprocessing.connection import Connection

from stream.events.batching import SampleBatcher
from stream.trainer.chunk_decoder import ChunkDecoder
from stream.trainer.chunk_wire import receive_schema, receive_values, send_decoded, send_failure

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    """Serve chunks on the pipe ends named by ``argv`` (see the module docstring); the exit code."""
    # It lives in its own session (no terminal's Ctrl-C reaches it); the training process owns its
    # life: it finishes its pass on SIGINT/SIGTERM, then closes the request pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests_fd, results_fd, index, level = (int(a) for a in argv)
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s %(name)s[decoder {index}]: %(message)s")
    requests, results = Connection(requests_fd, writable=False), Connection(results_fd, readable=False)
    return serve_chunks(requests, results)


def serve_chunks(requests: Connection, results: Connection) -> int:
    """Raw values in, decoded chunks out, until ``requests`` closes (0) or something fails (1)."""
    try:
        decoder = ChunkDecoder(SampleBatcher(receive_schema(requests)))
    except EOFError:
        return 0
    except Exception as error:
        return _failed(results, error)
    while True:
        try:
            values = receive_values(requests)
        except EOFError:
            return 0
        except Exception as error:  # a malformed request: say so and stop (the trainer stops too)
            return _failed(results, error)
        try:
            before = decoder.invalid
            kept, batch = decoder.decode(values)
            send_decoded(results, kept, batch, decoder.invalid - before)
        except (BrokenPipeError, EOFError):
            return 0  # the training process is gone
        except Exception as error:
            return _failed(results, error)


def _failed(results: Connection, error: Exception) -> int:
    log.debug("decoder failure", exc_info=error)  # the traceback with --log-level DEBUG; one line otherwise
    text = str(error).strip().splitlines()
    with contextlib.suppress(OSError):  # the training process may be gone
        send_failure(results, f"{type(error).__name__}: {text[0] if text else ''}"[:300])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
