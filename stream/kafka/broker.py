"""The local single-node Apache Kafka broker (KRaft, broker+controller) that the project manages.

``up`` fetches the jars (once), formats KRaft storage (once), starts ``java kafka.Kafka`` on
127.0.0.1, waits until it answers a metadata request and records pid, ports and data directory
in ``<data_dir>/broker.json``. ``down`` stops exactly the recorded process. Broker output goes to
``<data_dir>/broker.log`` (log4j2) and ``<data_dir>/broker.stdout.log`` (JVM), never the terminal.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from stream.config.errors import UserError
from stream.kafka.broker_jars import LOG4J_CONFIG_PATH, BrokerJars, ensure_broker_jars
from stream.kafka.clients import check_reachable
from stream.kafka.config import KafkaConfig, LocalBrokerConfig
from stream.storage.atomic_file import atomic_text_writer

STATE_FILE = "broker.json"
_POLL_S = 0.1


@dataclass(frozen=True)
class BrokerState:
    """What ``up`` records about the running broker (JSON in ``<data_dir>/broker.json``)."""

    pid: int
    host: str
    port: int
    controller_port: int
    data_dir: str  # absolute
    cluster_id: str
    jars_dir: str
    started_at_unix_s: float
    ready_seconds: float  # launch to first answered metadata request

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the recorded broker's client listener."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BrokerStart:
    """Outcome of ``up``."""

    state: BrokerState
    reused: bool  # True: a recorded broker was already running and answering
    jars: BrokerJars | None  # None when reused


@dataclass(frozen=True)
class BrokerStop:
    """Outcome of ``down``."""

    state: BrokerState | None  # None: nothing was recorded
    stopped: bool  # False: the recorded process was already gone (its record is removed)


@dataclass(frozen=True)
class BrokerStatus:
    """Outcome of ``status``."""

    state: BrokerState | None  # None: nothing recorded
    running: bool  # the recorded pid is alive and is our broker
    answering: bool  # it answered a metadata request


def render_server_properties(config: LocalBrokerConfig, log_dir: Path) -> str:
    """The broker's server.properties for a single KRaft node on ``config.host``."""
    host, port, cport = config.host, config.port, config.controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "offsets.topic.replication.factor": "1",
        # Few internal partitions: the first consumer group joins much faster on a small machine.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Topics come from `pepnet topics create` with their partition counts; a typo must fail.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # Simulated event times (the message timestamps) lie in the past: time-based retention
        # would delete replayable data minutes after it is written. Size-bounded instead.
        "log.retention.ms": "-1",
        "log.retention.bytes": str(2 * 1024**3),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    properties.update(config.properties)
    lines = ["# Written by stream.kafka.broker; edit kafka.local_broker in the YAML instead."]
    lines += [f"{key}={value}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


class LocalBroker:
    """Start, find and stop the broker recorded in ``config.data_dir``."""

    def __init__(self, config: LocalBrokerConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).expanduser().resolve()
        self.state_path = self.data_dir / STATE_FILE
        self.log_path = self.data_dir / "broker.log"
        self.stdout_path = self.data_dir / "broker.stdout.log"
        self.properties_path = self.data_dir / "server.properties"
        self.log_dir = self.data_dir / "kraft"
        self._process: subprocess.Popen[bytes] | None = None  # set when this object launched it
        self._log_offsets: dict[Path, int] = {}  # log sizes at launch (bytes)

    @property
    def bootstrap(self) -> str:
        """``host:port`` that kafka.local_broker asks the client listener to use."""
        return f"{self.config.host}:{self.config.port}"

    def _address(self) -> tuple[str, int, int]:
        return (self.config.host, self.config.port, self.config.controller_port)

    def up(self) -> BrokerStart:
        """Start the broker, or reuse the recorded one when it is alive and answering."""
        with self._lock():
            state = self.read_state()
            if state is not None:
                if self._is_our_broker(state.pid):
                    if (state.host, state.port, state.controller_port) != self._address():
                        raise UserError(
                            f"the broker recorded in {self.data_dir} (pid {state.pid}) listens on "
                            f"{state.bootstrap} but kafka.local_broker asks for {self.bootstrap}; "
                            "run `pepnet kafka down` first"
                        )
                    self._wait_ready(state.pid, time.monotonic())
                    return BrokerStart(state, reused=True, jars=None)
                self.state_path.unlink(missing_ok=True)  # stale: the process is gone
            return self._start()

    def down(self) -> BrokerStop:
        """Stop the recorded broker (SIGTERM, then SIGKILL after ``shutdown_timeout_s``) and forget it.

        A recorded pid that is gone, or now belongs to another program, is never signalled.
        """
        with self._lock():
            state = self.read_state()
            if state is None:
                return BrokerStop(None, stopped=False)
            running = self._is_our_broker(state.pid)
            if running:
                self._terminate(state.pid)
            self.state_path.unlink(missing_ok=True)
            return BrokerStop(state, stopped=running)

    def status(self, timeout_s: float = 2.0) -> BrokerStatus:
        """Whether the recorded broker runs and answers (waits at most ``timeout_s`` seconds)."""
        state = self.read_state()
        if state is None or not self._is_our_broker(state.pid):
            return BrokerStatus(state, running=False, answering=False)
        return BrokerStatus(state, running=True, answering=self._answers(timeout_s))

    def read_state(self) -> BrokerState | None:
        """The recorded state, or None when no broker was recorded (or the file is unreadable)."""
        try:
            return BrokerState(**json.loads(self.state_path.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def _start(self) -> BrokerStart:
        if shutil.which(self.config.java) is None:
            raise UserError(
                f"Java ({self.config.java}) is needed to run the local Kafka broker but is not installed; "
                "install Java 17+ (apt-get install openjdk-17-jre-headless), set kafka.local_broker.java, "
                "or set kafka.bootstrap to an existing cluster"
            )
        self._check_ports_free()
        jars = ensure_broker_jars(self.config.jars_dir, self.config.maven)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.properties_path, render_server_properties(self.config, self.log_dir))
        cluster_id = self._format_storage(jars)
        self._log_offsets = {p: p.stat().st_size for p in (self.log_path, self.stdout_path) if p.exists()}
        started = time.monotonic()
        with open(self.stdout_path, "ab") as out:
            self._process = subprocess.Popen(
                [*self._java_command(jars), "kafka.Kafka", str(self.properties_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI and ignores the terminal's Ctrl-C
            )
        pid = self._process.pid
        state = BrokerState(
            pid=pid, host=self.config.host, port=self.config.port,
            controller_port=self.config.controller_port, data_dir=str(self.data_dir),
            cluster_id=cluster_id, jars_dir=str(jars.directory),
            started_at_unix_s=time.time(), ready_seconds=0.0,
        )  # fmt: skip
        self._write_state(state)  # recorded before readiness so that `down` can always stop it
        try:
            ready_seconds = self._wait_ready(pid, started)
        except UserError:
            self._terminate(pid)
            self.state_path.unlink(missing_ok=True)
            raise
        state = BrokerState(**{**asdict(state), "ready_seconds": round(ready_seconds, 3)})
        self._write_state(state)
        return BrokerStart(state, reused=False, jars=jars)

    def _java_command(self, jars: BrokerJars) -> list[str]:
        return [
            self.config.java,
            f"-Xms{self.config.heap_mb}m",
            f"-Xmx{self.config.heap_mb}m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG_PATH}",
            f"-Dpepnet.kafka.log={self.log_path}",
            "-cp",
            jars.classpath,
        ]

    def _format_storage(self, jars: BrokerJars) -> str:
        """Format the KRaft log directory once; returns its cluster id."""
        meta = self.log_dir / "meta.properties"
        if meta.exists():
            for line in meta.read_text(encoding="utf-8").splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
        cluster_id = _new_cluster_id()
        command = [
            *self._java_command(jars), "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(self.properties_path), "--ignore-formatted",
        ]  # fmt: skip
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(
                f"formatting Kafka storage in {self.log_dir} failed (exit {result.returncode}): "
                f"{_java_error(result.stderr + result.stdout)}"
            )
        return cluster_id

    def _wait_ready(self, pid: int, started: float) -> float:
        """Wait until the broker answers a metadata request; returns seconds since ``started``."""
        deadline = started + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if not self._pid_alive(pid):
                raise UserError(
                    f"the Kafka broker (pid {pid}) exited during start-up: {self._last_log_error()}; "
                    f"full log in {self.log_path}"
                )
            if self._port_open() and self._answers(timeout_s=1.0):
                return time.monotonic() - started
            time.sleep(_POLL_S)
        raise UserError(
            f"the Kafka broker (pid {pid}) did not answer at {self.bootstrap} within "
            f"{self.config.startup_timeout_s:g} s (kafka.local_broker.startup_timeout_s); "
            f"see {self.log_path}"
        )

    def _answers(self, timeout_s: float) -> bool:
        try:
            check_reachable(KafkaConfig(local_broker=self.config), timeout_s=timeout_s)
        except UserError:
            return False
        return True

    def _port_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.config.host, self.config.port)) == 0

    def _check_ports_free(self) -> None:
        for key, port in (("port", self.config.port), ("controller_port", self.config.controller_port)):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.config.host, port))
                except OSError as e:
                    raise UserError(
                        f"kafka.local_broker.{key} {port} on {self.config.host} is not free ({e.strerror}); "
                        "choose another port, or set kafka.bootstrap to use the broker that holds it"
                    ) from None

    def _terminate(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_exit(pid, self.config.shutdown_timeout_s):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0):
            raise UserError(f"the Kafka broker (pid {pid}) survived SIGKILL; stop it by hand")

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._pid_alive(pid):
                return True
            time.sleep(_POLL_S)
        return not self._pid_alive(pid)

    def _pid_alive(self, pid: int) -> bool:
        """Alive and not a zombie; reaps the process when this object launched it."""
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError:
            return _signal_zero(pid)
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def _is_our_broker(self, pid: int) -> bool:
        """The pid is alive and runs kafka.Kafka with our server.properties (guards pid reuse)."""
        if not self._pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return False
        except OSError:
            return True  # no /proc: trust the recorded pid
        return b"kafka.Kafka" in cmdline and str(self.properties_path).encode() in cmdline

    def _last_log_error(self) -> str:
        """The telling line of what this launch wrote (the logs are appended across launches)."""
        text = ""
        for path in (self.log_path, self.stdout_path):
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                f.seek(self._log_offsets.get(path, 0))
                text += f.read().decode("utf-8", errors="replace")
        return _java_error(text)

    def _write_state(self, state: BrokerState) -> None:
        _atomic_write(self.state_path, json.dumps(asdict(state), indent=2) + "\n")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down on one data directory across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "broker.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's tools reject ids that look like options
            return cluster_id


def _java_error(output: str) -> str:
    """The most telling line of a JVM's output: the first exception with its message, else the
    first ERROR line, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("\tat ")]
    for marker in ("Exception: ", " ERROR "):
        for line in lines:
            if marker in line:
                return line.removeprefix('Exception in thread "main" ')[:400]
    return lines[-1][:400] if lines else "no output"


def _signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path: Path, text: str) -> None:
    with atomic_text_writer(path) as f:
        f.write(text)
