"""Acceptance: kill -9 the `pepnet train` process at 5 random moments of a 20-pass run (its decoder
processes must end with it), and at moments when its writer thread is in the middle of writing a
checkpoint.

The restarted runs must cut the same passes (manifests), train the same samples and end with a
model equal bit for bit to an uninterrupted run's (deterministic settings: torch deterministic
algorithms, one thread, seeded). Checkpoints are incremental (a base every few passes).
"""

import os
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest

from monitoring.run_log import read_pass_records
from stream.trainer.loop import read_manifests
from tests.conftest import REPO_ROOT

from .kafka_samples import fill_samples_topic, simulated_samples, small_config
from .test_loop import assert_same_model
from .train_process import clean_env, decoder_children, logged_passes, train_command, write_config

pytestmark = pytest.mark.kafka

PASSES = 20
KILLS = 5


def test_kill_9_five_times_equals_uninterrupted_run(pipeline_config, tmp_path):
    config = small_config(pipeline_config, pass_samples=100)
    fill_samples_topic(config, simulated_samples(config, 2600))
    config_path = write_config(pipeline_config, tmp_path / "config.yaml", checkpoint_base_every_passes=6)

    straight = tmp_path / "straight"
    until = ("--max-passes", str(PASSES))
    done = subprocess.run(train_command(config_path, straight, *until), cwd=REPO_ROOT, env=clean_env(), timeout=300,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    kills = kills_with_decoders = 0
    launches = 0
    while True:
        launches += 1
        process = subprocess.Popen(train_command(config_path, killed, *until), cwd=REPO_ROOT, env=clean_env(),
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
                decoders = decoder_children(process.pid)
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                _, orphans = psutil.wait_procs(decoders, timeout=30)
                assert not orphans  # the decoder processes end with the trainer
                # (None at a kill that lands while the trainer starts or closes its reader.)
                kills_with_decoders += bool(decoders)
                continue
        try:
            _, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:  # never leave a trainer behind when the test fails
                process.kill()
                process.wait()
        assert process.returncode == 0, stderr
        break
    assert kills == KILLS and launches == KILLS + 1 and kills_with_decoders > 0

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


def checkpoint_temporaries(run_dir) -> set[str]:
    """Names of the checkpoints' temporary directories (one exists while the writer is inside it)."""
    try:
        return {entry.name for entry in os.scandir(run_dir / "checkpoints") if entry.name.startswith(".ckpt-")}
    except FileNotFoundError:
        return set()


def test_kill_9_during_background_checkpoint_writes(pipeline_config, tmp_path):
    """Stop the trainer (SIGSTOP) as soon as a checkpoint's temporary directory appears; if it is
    still there once the process is frozen, the kill -9 lands inside the write."""
    passes, wanted = 14, 3
    config = small_config(pipeline_config, pass_samples=100)
    fill_samples_topic(config, simulated_samples(config, 1500))
    config_path = write_config(pipeline_config, tmp_path / "config.yaml", checkpoint_base_every_passes=4)
    straight = tmp_path / "straight"
    until = ("--max-passes", str(passes))
    done = subprocess.run(train_command(config_path, straight, *until), cwd=REPO_ROOT, env=clean_env(),
                          timeout=300, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    hits = 0
    deadline = time.monotonic() + 240
    while True:
        process = subprocess.Popen(train_command(config_path, killed, *until), cwd=REPO_ROOT, env=clean_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        stale = checkpoint_temporaries(killed)  # left by the last kill until the restart removes them
        try:
            while hits < wanted and process.poll() is None and time.monotonic() < deadline:
                if not checkpoint_temporaries(killed) - stale:
                    continue  # busy polling: a small checkpoint is written within milliseconds
                os.kill(process.pid, signal.SIGSTOP)
                if checkpoint_temporaries(killed) - stale:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    hits += 1
                    break
                os.kill(process.pid, signal.SIGCONT)
            if process.returncode is not None and process.returncode < 0:
                continue  # killed inside a write: restart
            _, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, stderr
        break
    assert hits == wanted, f"only {hits} kills landed inside a checkpoint write before the deadline"

    assert [m.to_dict() for m in read_manifests(killed)] == [m.to_dict() for m in read_manifests(straight)]
    assert [r.pass_index for r in read_pass_records(killed)] == list(range(passes))
    assert_same_model(straight, killed)
