"""Acceptance: kill -9 the `pepnet train` process at 5 random moments of a 20-pass run.

The restarted runs must cut the same passes (manifests), train the same samples and end with a
model equal bit for bit to an uninterrupted run's (deterministic settings: torch deterministic
algorithms, one thread, seeded).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from monitoring.run_log import read_pass_records
from stream.config.pipeline import PROJECT_ROOT
from stream.trainer.loop import read_manifests

from .kafka_samples import SMALL_TRAINER, fill_samples_topic, kafka_overrides, simulated_samples, small_config
from .test_loop import assert_same_model

pytestmark = pytest.mark.kafka

PASSES = 20
KILLS = 5


def write_config(pipeline_config, path):
    data = {
        "kafka": kafka_overrides(pipeline_config),
        **SMALL_TRAINER,
        "trainer": {**SMALL_TRAINER["trainer"], "pass_samples": 100},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def train_command(config_path, run_dir):
    return [
        sys.executable, "-m", "stream.cli.main", "train", "--config", str(config_path),
        "--run-dir", str(run_dir), "--max-passes", str(PASSES), "--log-level", "WARNING",
    ]  # fmt: skip


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}


def logged_passes(run_dir) -> int:
    path = run_dir / "passes.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def test_kill_9_five_times_equals_uninterrupted_run(pipeline_config, tmp_path):
    config = small_config(pipeline_config, pass_samples=100)
    fill_samples_topic(config, simulated_samples(config, 2600))
    config_path = write_config(pipeline_config, tmp_path / "config.yaml")

    straight = tmp_path / "straight"
    done = subprocess.run(train_command(config_path, straight), cwd=PROJECT_ROOT, env=clean_env(), timeout=300,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    kills = 0
    launches = 0
    while True:
        launches += 1
        process = subprocess.Popen(train_command(config_path, killed), cwd=PROJECT_ROOT, env=clean_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        if kills < KILLS:
            # A random moment: after 1-2 more passes are logged, plus 0-100 ms into the next one.
            # (Small steps leave >= 9 passes after the last kill: on an idle machine a pass of
            # 100 samples takes well under 100 ms, and the run must not finish before kill 5.)
            target = logged_passes(killed) + int(rng.integers(1, 3))
            deadline = time.monotonic() + 120
            while logged_passes(killed) < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, 0.1)))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                continue
        try:
            _, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:  # never leave a trainer behind when the test fails
                process.kill()
                process.wait()
        assert process.returncode == 0, stderr
        break
    assert kills == KILLS and launches == KILLS + 1

    manifests_straight, manifests_killed = read_manifests(straight), read_manifests(killed)
    assert len(manifests_straight) == PASSES
    assert [m.to_dict() for m in manifests_killed] == [m.to_dict() for m in manifests_straight]
    records_straight, records_killed = read_pass_records(straight), read_pass_records(killed)
    assert [r.pass_index for r in records_killed] == list(range(PASSES))
    assert sum(r.samples for r in records_killed) == sum(r.samples for r in records_straight) == PASSES * 100
    # Progressive metrics are computed from the same model on the same samples: equal too.
    assert [r.auc for r in records_killed] == [r.auc for r in records_straight] or all(
        str(a.auc) == str(b.auc) for a, b in zip(records_killed, records_straight, strict=True)
    )
    assert_same_model(straight, killed)
