"""Metrics endpoint: serves the given registry on loopback, frees its port on close."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from monitoring.server import start_metrics_server


def test_serves_the_registry_on_loopback_and_closes() -> None:
    registry = CollectorRegistry()
    Gauge("pepnet_test_value", "doc", registry=registry).set(42)
    server = start_metrics_server(registry)
    assert server.host == "127.0.0.1" and server.port > 0
    body = urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert "pepnet_test_value 42.0" in body
    assert "process_resident_memory_bytes" in body  # every serving process reports its memory
    assert "pepnet_test_value" not in generate_latest(REGISTRY).decode()  # not the global registry
    server.close()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", server.port))


def test_busy_port_is_an_error_naming_the_address() -> None:
    registry = CollectorRegistry()
    with start_metrics_server(registry) as first, pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
        start_metrics_server(registry, port=first.port)
