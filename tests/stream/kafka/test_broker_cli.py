"""`pepnet kafka up|status|down` against a broker of the test's own, and the unreachable error."""

import os
import re
import signal
from pathlib import Path

import pytest

from stream.config.errors import UserError


def broker_pids(data_dir: Path) -> list[int]:
    """Live processes whose command line names this data directory's server.properties."""
    marker = str(data_dir / "server.properties").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.kafka
def test_up_twice_leaves_one_broker_and_down_leaves_none(tmp_path, pepnet_cli, free_tcp_ports):
    port, controller_port = free_tcp_ports(2)
    data_dir = tmp_path / "kafka"
    env = {
        "PEPNET_KAFKA_LOCAL_BROKER_PORT": str(port),
        "PEPNET_KAFKA_LOCAL_BROKER_CONTROLLER_PORT": str(controller_port),
        "PEPNET_KAFKA_LOCAL_BROKER_DATA_DIR": str(data_dir),
    }
    first = pepnet_cli("kafka", "up", env=env)
    try:
        assert first.returncode == 0, first.stderr
        ready = re.search(rf"ready at 127\.0\.0\.1:{port} in (\d+\.\d) s .*pid (\d+)", first.stdout)
        assert ready, first.stdout
        pid = int(ready.group(2))
        assert broker_pids(data_dir) == [pid]
        assert first.stderr == ""  # broker output goes to files, not the terminal
        assert (data_dir / "broker.log").stat().st_size > 0

        second = pepnet_cli("kafka", "up", env=env)
        assert second.returncode == 0, second.stderr
        assert f"already running at 127.0.0.1:{port} (pid {pid})" in second.stdout
        assert broker_pids(data_dir) == [pid]

        status = pepnet_cli("kafka", "status", env=env)
        assert status.returncode == 0 and "answering" in status.stdout and f"pid {pid}" in status.stdout

        (other_port,) = free_tcp_ports(1)
        moved = pepnet_cli("kafka", "up", env={**env, "PEPNET_KAFKA_LOCAL_BROKER_PORT": str(other_port)})
        assert moved.returncode == 2 and "run `pepnet kafka down` first" in moved.stderr, moved.stderr
        assert broker_pids(data_dir) == [pid]
    finally:
        down = pepnet_cli("kafka", "down", env=env)
        for leftover in broker_pids(data_dir):  # never leak a JVM, even when an assertion failed
            os.kill(leftover, signal.SIGKILL)
    assert down.returncode == 0 and f"stopped (pid {pid}" in down.stdout, down.stdout + down.stderr
    assert broker_pids(data_dir) == []
    after = pepnet_cli("kafka", "status", env=env)
    assert after.returncode == 1 and "not running" in after.stdout


def test_unreachable_bootstrap_ends_with_one_line_and_exit_code_2(pepnet_cli, free_tcp_ports):
    (port,) = free_tcp_ports(1)
    env = {"PEPNET_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "PEPNET_KAFKA_CONNECT_TIMEOUT_S": "0.5"}
    for args in (("topics", "create"), ("topics", "list"), ("kafka", "up")):
        result = pepnet_cli(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith(f"error: cannot reach Kafka at 127.0.0.1:{port}: "), lines[0]
        assert "(waited 0.5 s)" in lines[0], lines[0]  # kafka.connect_timeout_s bounds every wait
        assert result.stdout == ""


def test_external_bootstrap_never_stops_anything(pepnet_cli):
    result = pepnet_cli("kafka", "down", env={"PEPNET_KAFKA_BOOTSTRAP": "broker.example:9092"})
    assert result.returncode == 0
    assert "external cluster, nothing to stop" in result.stdout


def local_broker(tmp_path, ports, **properties):
    from stream.kafka.broker import LocalBroker
    from stream.kafka.config import LocalBrokerConfig

    return LocalBroker(
        LocalBrokerConfig(
            port=ports[0],
            controller_port=ports[1],
            data_dir=str(tmp_path / "kafka"),
            jars_dir=os.environ.get("PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR", ""),
            properties=properties,
        )
    )


@pytest.mark.kafka
def test_a_bad_broker_setting_is_reported_in_one_line_when_formatting(tmp_path, free_tcp_ports):
    broker = local_broker(tmp_path, free_tcp_ports(2), **{"num.io.threads": "many"})
    with pytest.raises(UserError) as raised:
        broker.up()
    message = str(raised.value)
    assert message.startswith("formatting Kafka storage in ")
    assert "Invalid value many for configuration num.io.threads" in message and "\n" not in message
    assert broker.read_state() is None


@pytest.mark.kafka
def test_a_broker_that_dies_during_start_up_is_reported_and_forgotten(tmp_path, free_tcp_ports):
    ports = free_tcp_ports(2)
    good = local_broker(tmp_path, ports)
    good.up()  # formats the storage, so that the next start skips the format step
    assert good.down().stopped
    # The storage tool never sees this setting now: the broker itself must fail on it.
    broker = local_broker(tmp_path, ports, **{"num.io.threads": "many"})
    with pytest.raises(UserError, match=r"^the Kafka broker \(pid \d+\) exited during start-up: .*num\.io\.threads"):
        broker.up()
    assert broker.read_state() is None
    assert broker_pids(broker.data_dir) == []
