"""Claiming a trainer's directories: created with one-line errors, locked, cleaned of what a
killed writer left; a model directory ahead of the checkpoints is refused."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitoring.run_log import read_pass_records
from stream.config.errors import UserError
from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.exporter import pass_dir_name
from stream.trainer.run_directory import RunDirectories, TrainerPaths, check_model_dir
from tests.conftest import REPO_ROOT
from tests.stream.trainer.kafka_samples import small_config
from tests.stream.trainer.train_process import (
    clean_env,
    logged_passes,
    never_left_running,
    one_error_line,
    prepare_run,
    train,
    train_command,
    write_config,
)


def paths_in(root: Path) -> TrainerPaths:
    return TrainerPaths(root, root / "model", root / "checkpoints")


def test_a_new_model_over_the_exports_of_a_trained_one_is_refused_with_one_line(tmp_path):
    paths = paths_in(tmp_path)
    check_model_dir(paths)  # nothing there yet
    (paths.model_dir / pass_dir_name(0)).mkdir(parents=True)
    check_model_dir(paths)  # killed between the first export and the first checkpoint
    (paths.model_dir / "table").mkdir()
    (paths.model_dir / "table" / "delta-000000024.npz").write_bytes(b"")
    with pytest.raises(UserError) as error:
        check_model_dir(paths)
    message = str(error.value)
    assert "holds exports up to pass 24" in message and "has no checkpoint" in message and "\n" not in message
    assert "--run-dir" in message and "trainer.checkpoint_dir" in message


KILLED_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from stream.storage.atomic_file import atomic_directory, atomic_text_writer

model = Path(sys.argv[1]) / "model"
with atomic_text_writer(model / "LATEST") as latest, atomic_directory(model / "pass-000000007") as tmp:
    (tmp / "dense.pt").write_bytes(b"half")
    np.savez(open(model / "table" / ".delta-000000007.npz.x1.tmp", "wb"), a=np.zeros(3))
    print("writing", flush=True)
    time.sleep(600)
"""


def test_temporaries_of_a_writer_killed_mid_write_are_removed_when_a_run_claims_its_directories(tmp_path):
    paths = paths_in(tmp_path)
    (paths.model_dir / "table").mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    left = sorted(p.name for d in (paths.model_dir, paths.model_dir / "table") for p in d.iterdir())
    assert len([name for name in left if name.endswith(".tmp")]) == 3, left
    directories = RunDirectories(paths)
    directories.claim()
    try:
        assert sorted(p.name for p in paths.model_dir.iterdir()) == [".lock", "table"]
        assert list((paths.model_dir / "table").iterdir()) == []
        with pytest.raises(UserError, match=r"is in use by another trainer \(pid \d+\); stop it first"):
            RunDirectories(paths).claim()
    finally:
        directories.release()
    RunDirectories(paths).claim()  # released: free again


def test_a_directory_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"^run_dir .*/file/run: cannot create it \(Not a directory\); give --run-dir"):
        RunDirectories(paths_in(tmp_path / "file" / "run")).claim()


# -- against the broker: `pepnet train` processes -----------------------------------------------


@pytest.mark.kafka
def test_a_new_run_over_a_model_dir_whose_checkpoints_are_lost_is_refused(pipeline_config, tmp_path):
    """Issue 12 case 6 end to end: the run started silently at pass 0 and pruning deleted its passes."""
    config_path, run_dir = prepare_run(pipeline_config, tmp_path, 600)
    assert train(config_path, run_dir, "--max-passes", "4").returncode == 0
    shutil.rmtree(run_dir / "checkpoints")
    before = sorted(p.name for p in (run_dir / "model").iterdir())
    line = one_error_line(train(config_path, run_dir, "--max-passes", "6"))
    assert "holds exports up to pass 3" in line and "has no checkpoint" in line
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == before  # nothing written, nothing pruned
    assert [r.pass_index for r in read_pass_records(run_dir)] == [0, 1, 2, 3]


@pytest.mark.kafka
def test_a_second_trainer_on_a_run_dir_is_refused_and_sigterm_checkpoints_and_exits_0(pipeline_config, tmp_path):
    """Issue 12 case 7 (two trainers interleaved passes.jsonl) and the trainer's SIGTERM."""
    config_path, run_dir = prepare_run(pipeline_config, tmp_path, 400)
    first = subprocess.Popen(train_command(config_path, run_dir), cwd=REPO_ROOT, env=clean_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    with never_left_running(first):
        deadline = time.monotonic() + 120
        while logged_passes(run_dir) < 2:
            assert first.poll() is None and time.monotonic() < deadline, "the first trainer did not train 2 passes"
            time.sleep(0.1)
        line = one_error_line(train(config_path, run_dir, "--stop-at-end"))
        assert f"is in use by another trainer (pid {first.pid})" in line
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    logged = [r.pass_index for r in read_pass_records(run_dir)]
    assert logged == list(range(len(logged))) and len(logged) >= 2  # one writer only
    assert out.startswith(f"stopped by SIGTERM; trained {len(logged)} passes")
    # Every pass trained was checkpointed before the exit: a restart resumes right after it.
    assert CheckpointStore(run_dir / "checkpoints", keep_chains=2).latest_restorable()[0] == logged[-1]


def tiny_filesystem_prefix(directory: Path, size_bytes: int) -> tuple[list[str], object]:
    """A command prefix (and preexec function) that runs a command with ``directory`` on a file
    system of ``size_bytes``: a private tmpfs mount in a mount namespace when `unshare` may mount
    (root, or unprivileged user namespaces); otherwise RLIMIT_FSIZE, which makes any file above
    the size fail with EFBIG ("File too large") the same way, for every file of the process."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode == 0:
        script = f'mount -t tmpfs -o size={size_bytes} tmpfs "{directory}" && exec "$@"'
        return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"], None

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, size_bytes))

    return [], limit_file_size


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("full", "size_bytes", "what"), [("model", 64 << 10, "export"), ("checkpoints", 512 << 10, "checkpoint")]
)
def test_a_full_disk_is_one_line_and_leaves_the_last_checkpoint_usable(
    pipeline_config, tmp_path, full, size_bytes, what
):
    """Issue 12 case 8: a full disk gave an OSError traceback at checkpoint time and torch's
    "RuntimeError: enforce fail ... unexpected pos" at export time."""
    config_path, run_dir = prepare_run(pipeline_config, tmp_path, 300)
    (run_dir / full).mkdir(parents=True)
    prefix, preexec = tiny_filesystem_prefix(run_dir / full, size_bytes)
    line = one_error_line(train(config_path, run_dir, "--stop-at-end", prefix=prefix, preexec=preexec))
    assert line.startswith(f"error: cannot write the {what} of pass 0: ")
    assert "No space left on device" in line or "File too large" in line
    assert "restart: the trainer resumes from its last checkpoint" in line
    done = train(config_path, run_dir, "--stop-at-end")  # space again: it trains from the start
    assert done.returncode == 0, done.stderr
    records = read_pass_records(run_dir)
    assert [r.pass_index for r in records] == list(range(len(records))) and sum(r.samples for r in records) == 300


@pytest.mark.kafka
def test_pass_samples_below_the_partition_count_is_one_line(pipeline_config, tmp_path):
    """Issue 12 case 8: a pass takes a share of every partition; below one each, a traceback."""
    small_config(pipeline_config)  # creates the samples topic (4 partitions)
    config_path = write_config(pipeline_config, tmp_path / "config.yaml")  # then pass_samples 3:
    config_path.write_text(config_path.read_text().replace("pass_samples: 100", "pass_samples: 3"))
    line = one_error_line(train(config_path, tmp_path / "run", "--stop-at-end"))
    assert line.startswith("error: trainer.pass_samples = 3 is less than the 4 partitions of ")
