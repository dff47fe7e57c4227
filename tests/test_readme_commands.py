"""Every command of the README's "After the demo" block works as written after a demo.

The block is read from README.md at test time and each line runs in bash, from the directory the
demo ran in, with a `pepnet` on PATH that runs this checkout. The demo is smaller than `make
demo`'s (the commands do not depend on its size), and the local broker gets free ports so that the
test never touches a broker of the developer's on 127.0.0.1:19092.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_ports

pytestmark = pytest.mark.kafka


def after_the_demo_commands() -> list[str]:
    """The lines of the first ```bash block under "## After the demo" in README.md."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## After the demo", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: no ```bash block under '## After the demo'"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_commands_after_the_demo_work_as_written(tmp_path: Path) -> None:
    commands = after_the_demo_commands()
    assert commands[0].startswith("pepnet ") and len(commands) >= 5
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "pepnet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stream.cli.main "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    port, controller_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    if "PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR" in os.environ:
        env["PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR"] = os.environ["PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR"]
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "PEPNET_KAFKA_LOCAL_BROKER_PORT": str(port),
        "PEPNET_KAFKA_LOCAL_BROKER_CONTROLLER_PORT": str(controller_port),
    }
    work = tmp_path / "work"
    work.mkdir()

    def shell(line: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    try:
        demo = shell("pepnet demo --impressions 20000 --passes 4 --pass-samples 2000", timeout=900)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert (work / "runs" / "demo-latest" / "holdout.jsonl").is_file()
        for line in commands:
            done = shell(line)
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            assert "Traceback" not in done.stderr, f"{line}\n{done.stderr[-2000:]}"
    finally:
        shell("pepnet kafka down", timeout=120)
    assert len(list((work / "runs" / "demo-replay" / "manifests").glob("pass-*.json"))) >= 4
