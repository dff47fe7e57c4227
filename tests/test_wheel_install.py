"""The package works from its wheel, not only as an editable checkout: the wheel is built from a
copy of the checkout's sources, installed (not editable) into a fresh virtual environment outside the checkout,
and `pepnet --help`, a config error and an offline `pepnet evaluate --events 20000` run from there.

The venv sees the system's site-packages for the heavy dependencies (torch is not downloaded again),
and the test checks that `stream` is imported from the venv's own copy, never from the checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# What the wheel is built from: the project file, the readme (its long description) and the packages.
SOURCES = ("pyproject.toml", "README.md", "stream", "pepnet", "embedding_store", "monitoring")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's `pepnet`, a clean environment, a working directory outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source, dist, venv, work = root / "src", root / "dist", root / "venv", root / "work"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PEPNET_")}
    run = {"env": env, "capture_output": True, "text": True, "timeout": 600}
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(dist), str(source)], **run)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list(dist.glob("pepnet_stream-*.whl"))
    assert len(wheels) == 1, wheels
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], **run)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheels[0])], **run)
    assert done.returncode == 0, done.stderr[-3000:]
    work.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import stream; print(stream.__file__)"],
                           cwd=work, **run)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    return venv / "bin" / "pepnet", env, work


def pepnet(installed: tuple[Path, dict[str, str], Path], *args: str, timeout: float = 120, **env: str):
    command, base, work = installed
    return subprocess.run([str(command), *args], cwd=work, env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_help_from_the_wheel(installed) -> None:
    done = pepnet(installed, "--help")
    assert done.returncode == 0, done.stderr
    assert "COMMAND" in done.stdout and "evaluate" in done.stdout


def test_a_config_error_from_the_wheel_is_one_line(installed) -> None:
    _, _, work = installed
    (work / "bad.yaml").write_text("trainer:\n  pass_samples: -1\n")
    done = pepnet(installed, "--config", "bad.yaml", "train")
    assert done.returncode == 2
    assert done.stderr == "error: trainer.pass_samples: must be > 0, got -1\n"


def test_offline_evaluate_from_the_wheel(installed) -> None:
    with socket.socket() as sock:  # a bootstrap where nothing listens: evaluate must not need Kafka
        sock.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{sock.getsockname()[1]}"
    done = pepnet(installed, "evaluate", "--events", "20000", "--out", "evaluation", timeout=900,
                  PEPNET_KAFKA_BOOTSTRAP=nowhere)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _, _, work = installed
    assert {p.name for p in (work / "evaluation").iterdir()} == {"evaluation.csv", "evaluation.json", "evaluation.md"}
    assert "| pepnet |" in done.stdout
