"""The local broker's pieces that need no running broker: properties, state, guards, jars."""

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from stream.config.errors import UserError
from stream.kafka.broker import BrokerState, LocalBroker, render_server_properties
from stream.kafka.broker_jars import POM_PATH, default_jars_dir, ensure_broker_jars
from stream.kafka.config import LocalBrokerConfig


def broker_in(tmp_path, **overrides) -> LocalBroker:
    return LocalBroker(LocalBrokerConfig(data_dir=str(tmp_path / "kafka"), **overrides))


def record(broker: LocalBroker, pid: int) -> BrokerState:
    state = BrokerState(
        pid=pid, host="127.0.0.1", port=broker.config.port, controller_port=broker.config.controller_port,
        data_dir=str(broker.data_dir), cluster_id="x", jars_dir="j", started_at_unix_s=time.time(),
        ready_seconds=1.0,
    )  # fmt: skip
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    broker.state_path.write_text(json.dumps(asdict(state)))
    return state


def test_server_properties_describe_one_kraft_node_on_the_configured_ports(tmp_path):
    config = LocalBrokerConfig(port=21000, controller_port=21001, properties={"num.io.threads": "2"})
    text = render_server_properties(config, tmp_path / "log")
    lines = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["process.roles"] == "broker,controller"
    assert lines["controller.quorum.voters"] == "1@127.0.0.1:21001"
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:21000,CONTROLLER://127.0.0.1:21001"
    assert lines["log.dirs"] == str(tmp_path / "log")
    assert lines["offsets.topic.replication.factor"] == "1"
    assert lines["num.io.threads"] == "2"  # the user's entry wins over the generated one


def test_nothing_recorded_means_nothing_to_stop(tmp_path):
    broker = broker_in(tmp_path)
    outcome = broker.down()
    assert outcome.state is None and not outcome.stopped
    status = broker.status()
    assert status.state is None and not status.running


def test_a_recorded_pid_that_is_not_our_broker_is_never_signalled(tmp_path):
    # The pid of this very test process stands for a pid reused by an unrelated program.
    broker = broker_in(tmp_path)
    record(broker, os.getpid())
    assert not broker.status().running
    outcome = broker.down()
    assert outcome.state is not None and not outcome.stopped  # forgets the stale record...
    assert broker.read_state() is None  # ...and we are still alive to check it


def test_a_dead_recorded_pid_is_reported_as_not_running(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    broker = broker_in(tmp_path)
    state = record(broker, child.pid)
    status = broker.status()
    assert status.state == state and not status.running and not status.answering


def test_a_busy_port_is_reported_with_its_key_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        broker = broker_in(tmp_path, port=port, controller_port=port + 1 if port < 65535 else port - 1)
        with pytest.raises(UserError, match=f"^kafka.local_broker.port {port} on 127.0.0.1 is not free"):
            broker.up()
    assert not (broker.data_dir / "server.properties").exists()


def test_jars_cache_is_keyed_by_the_pom_digest(tmp_path):
    pom = tmp_path / "pom.xml"
    pom.write_text(POM_PATH.read_text())
    same = default_jars_dir(pom)
    assert same == default_jars_dir(POM_PATH)
    pom.write_text(POM_PATH.read_text().replace("4.1.2", "4.1.1"))
    assert default_jars_dir(pom) != same


def test_complete_jars_directory_is_reused_without_maven(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / ".complete").write_text("done")
    result = ensure_broker_jars(str(jars), maven="no-such-maven-binary")
    assert result.directory == jars and not result.fetched and result.fetch_seconds == 0
    assert result.classpath == f"{jars}/*"


def test_missing_maven_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match=r"^Maven \(no-such-maven-binary\) is needed once"):
        ensure_broker_jars(str(tmp_path / "jars"), maven="no-such-maven-binary")
    assert not (tmp_path / "jars").exists()


def test_missing_java_is_one_clear_line(tmp_path):
    broker = broker_in(tmp_path, java="no-such-java-binary")
    with pytest.raises(UserError, match=r"^Java \(no-such-java-binary\) is needed to run the local Kafka broker"):
        broker.up()
    assert broker.read_state() is None
