"""`pepnet train` as a subprocess of a test: its config file, command line, environment and output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil
import yaml

from tests.conftest import REPO_ROOT

from .kafka_samples import SMALL_TRAINER, fill_samples_topic, kafka_overrides, simulated_samples, small_config


def write_config(pipeline_config, path: Path, **trainer: object) -> Path:
    """The small trainer settings with passes of 100 samples (and ``trainer`` keys), on the test's
    broker and topics."""
    data = {
        "kafka": kafka_overrides(pipeline_config),
        **SMALL_TRAINER,
        "trainer": {**SMALL_TRAINER["trainer"], "pass_samples": 100, **trainer},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def train_command(config_path: Path, run_dir: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "stream.cli.main", "train", "--config", str(config_path),
        "--run-dir", str(run_dir), "--log-level", "WARNING", *options,
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}


def decoder_children(pid: int) -> list[psutil.Process]:
    """The decoder processes of the trainer ``pid``."""
    return [c for c in psutil.Process(pid).children() if "stream.trainer.decoder_process" in c.cmdline()]


def logged_passes(run_dir: Path) -> int:
    path = run_dir / "passes.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def train(
    config_path: Path,
    run_dir: Path,
    *options: str,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    """Run `pepnet train` to its end (``prefix``: a command it runs under, e.g. `unshare`)."""
    command = [*prefix, *train_command(config_path, run_dir, *options)]
    return subprocess.run(command, cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec)  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed on stderr (logging at WARNING prints nothing else)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def prepare_run(pipeline_config, tmp_path: Path, samples: int) -> tuple[Path, Path]:
    """The test's samples topic filled with ``samples`` simulated samples and a config file for
    passes of 100; returns (config path, run directory)."""
    config = small_config(pipeline_config, pass_samples=100)
    fill_samples_topic(config, simulated_samples(config, samples))
    return write_config(pipeline_config, tmp_path / "config.yaml"), tmp_path / "run"


@contextmanager
def never_left_running(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill ``process`` on the way out if it still runs (a failing test leaves no trainer behind)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
