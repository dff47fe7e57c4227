"""HTTP endpoint that serves one registry's metrics to Prometheus."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from monitoring.process_metrics import register_process_metrics


@dataclass
class MetricsServer:
    """A running metrics endpoint; `close()` stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """URL of the metrics page, e.g. http://127.0.0.1:9400/metrics."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_metrics_server(registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics on a daemon thread (port 0 = any free port).

    Also registers this process's memory and CPU metrics (`register_process_metrics`) on `registry`:
    every process that serves metrics reports them. Raises OSError naming the address when the
    port is taken.
    """
    register_process_metrics(registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise OSError(error.errno, f"cannot serve metrics on {host}:{port}: {error.strerror}") from error
    return MetricsServer(host=host, port=server.server_port, _server=server, _thread=thread)
