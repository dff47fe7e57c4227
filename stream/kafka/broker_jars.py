"""The Apache Kafka broker's jars, fetched once from Maven Central with Maven and cached.

The pom (``stream/kafka/broker_files/pom.xml``, package data) names the broker and its log4j2
binding; Maven copies their runtime jars into a directory keyed by the pom's digest, so a new pom fetches anew and an
unchanged one is reused without any network access.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.config.errors import UserError

# Package data (plain paths: pip installs packages unzipped). Maven runs on a copy of the pom, so
# the installed package may be read-only.
BROKER_FILES = Path(str(resources.files("stream.kafka") / "broker_files"))
POM_PATH = BROKER_FILES / "pom.xml"
LOG4J_CONFIG_PATH = BROKER_FILES / "log4j2.properties"
_COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class BrokerJars:
    """A directory holding every runtime jar of the broker."""

    directory: Path
    fetched: bool  # False when the cached copy was reused (no Maven run)
    fetch_seconds: float  # wall time of the Maven run, 0 when reused

    @property
    def classpath(self) -> str:
        """The java ``-cp`` argument (a wildcard over the directory)."""
        return str(self.directory / "*")


def default_jars_dir(pom_path: Path = POM_PATH) -> Path:
    """``~/.cache/pepnet/kafka-jars/<first 12 hex digits of the pom's sha256>``."""
    digest = hashlib.sha256(_read_pom(pom_path)).hexdigest()[:12]
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_root / "pepnet" / "kafka-jars" / digest


def ensure_broker_jars(jars_dir: str = "", maven: str = "mvn", pom_path: Path = POM_PATH) -> BrokerJars:
    """Return the broker jars, running Maven only when the directory is not complete yet.

    ``jars_dir`` empty means :func:`default_jars_dir`. Maven writes into a sibling temporary
    directory that is renamed into place when complete, so an interrupted fetch is never reused.
    """
    directory = Path(jars_dir).expanduser() if jars_dir else default_jars_dir(pom_path)
    if (directory / _COMPLETE_MARKER).exists():
        return BrokerJars(directory, fetched=False, fetch_seconds=0.0)
    pom = _read_pom(pom_path)
    if shutil.which(maven) is None:
        raise UserError(
            f"Maven ({maven}) is needed once to fetch the Kafka broker jars but is not installed; "
            "install it (apt-get install maven) or set kafka.local_broker.maven"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = directory.parent / f"{directory.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    log_path = directory.parent / f"{directory.name}.maven.log"
    project = directory.parent / f"{directory.name}.pom-{os.getpid()}"
    project.mkdir(exist_ok=True)
    (project / "pom.xml").write_bytes(pom)
    command = [
        maven, "-q", "-B", "-f", str(project / "pom.xml"), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]  # fmt: skip
    start = time.monotonic()
    with open(log_path, "wb") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    shutil.rmtree(project, ignore_errors=True)
    seconds = time.monotonic() - start
    if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(
            f"fetching the Kafka broker jars with Maven failed (exit {result.returncode}): "
            f"{_last_line(log_path)}; full log in {log_path}"
        )
    (partial / _COMPLETE_MARKER).write_text(" ".join(command) + "\n", encoding="utf-8")
    try:
        partial.rename(directory)
    except OSError:
        # Another process completed the same fetch first: keep its copy.
        shutil.rmtree(partial, ignore_errors=True)
        if not (directory / _COMPLETE_MARKER).exists():
            raise
    return BrokerJars(directory, fetched=True, fetch_seconds=seconds)


def _read_pom(pom_path: Path) -> bytes:
    try:
        return pom_path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"the Kafka broker pom {pom_path} is missing (a broken installation: reinstall pepnet-stream) "
            "or set kafka.bootstrap to an existing cluster"
        ) from None


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else "no output"
