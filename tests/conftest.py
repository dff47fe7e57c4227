"""Shared fixtures: a real local Kafka broker (tests marked ``kafka``) and configs pointed at it.

``kafka_broker`` starts one single-node KRaft broker per session on free ports in a temporary
directory (jars from the shared cache, fetched with Maven on the very first run) and stops it at
the end. Set ``PEPNET_TEST_KAFKA_BOOTSTRAP=host:port`` to run the same tests against a broker of
your own instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.fixture
def free_tcp_ports() -> Callable[[int], list[int]]:
    """The :func:`free_ports` function, for tests that start servers of their own."""
    return free_ports


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap string (``127.0.0.1:port``) of a real Kafka broker that lives for the session."""
    external = os.environ.get("PEPNET_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from stream.kafka.broker import LocalBroker
    from stream.kafka.config import LocalBrokerConfig

    port, controller_port = free_ports(2)
    broker = LocalBroker(
        LocalBrokerConfig(
            port=port,
            controller_port=controller_port,
            data_dir=str(tmp_path_factory.mktemp("kafka")),
            jars_dir=os.environ.get("PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR", ""),
        )
    )
    started = broker.up()
    try:
        yield started.state.bootstrap
    finally:
        broker.down()


@pytest.fixture
def pipeline_config(kafka_broker: str, tmp_path: Path):
    """The default PipelineConfig pointed at ``kafka_broker``, with topics of its own (already
    created, named ``test.<random>.<role>``) and ``run_dir`` in the test's tmp directory.

    Environment variables are ignored so that a developer's PEPNET_* settings cannot leak in.
    """
    from stream.config.pipeline import load_config
    from stream.kafka.config import TopicsConfig
    from stream.kafka.topics import create_topics

    prefix = f"test.{uuid.uuid4().hex[:10]}"
    topics = {role: {"name": f"{prefix}.{role}"} for role in TopicsConfig().by_role()}
    config = load_config(
        overrides={"kafka": {"bootstrap": kafka_broker, "topics": topics}, "run_dir": str(tmp_path / "run")},
        environ={},
    )
    create_topics(config.kafka)
    return config


PepnetCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def pepnet_cli() -> PepnetCli:
    """Run ``pepnet ARGS...`` as a subprocess from the repository root; returns the completed process.

    ``env`` entries are added to a copy of the environment from which every PEPNET_* variable
    except the jar cache location is removed.
    """

    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120.0):
        base = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
        if "PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR" in os.environ:
            base["PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR"] = os.environ["PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR"]
        return subprocess.run(
            [sys.executable, "-m", "stream.cli.main", *args],
            cwd=REPO_ROOT,
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
