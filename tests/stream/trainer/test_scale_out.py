"""Acceptance of the scale-out: ``pepnet train --world-size 2`` on a real broker, loopback gloo.

* Two ranks cut the same passes as one process (manifests equal: every sample trained exactly
  once, by one rank), reach the same progressive AUC (to float noise), and their sharded export
  scores like the one-process export.
* A run goes 1 -> 2 -> 1 ranks from committed passes (the table re-sharded each time) and still
  equals a one-process run's manifests.
* kill -9 of either rank at seeded random moments: the launcher restarts both ranks from the last
  committed pass; manifests, run log and final model (every shard, dense state) equal an
  uninterrupted two-rank run bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml

from monitoring.run_log import read_pass_records
from stream.scoring.exported_model import ExportedModel
from stream.serving.live_model import LiveModel, PassUpdate
from stream.trainer.loop import read_manifests
from stream.trainer.run_checkpoints import COMMIT_FILE
from stream.trainer.training_model import dense_tensors_equal
from tests.conftest import REPO_ROOT

from .kafka_samples import SMALL_TRAINER, fill_samples_topic, kafka_overrides, simulated_samples, small_config

pytestmark = pytest.mark.kafka

PASS_SAMPLES = 100


def write_config(pipeline_config, path: Path) -> Path:
    data = {
        "kafka": kafka_overrides(pipeline_config),
        **SMALL_TRAINER,
        "trainer": {**SMALL_TRAINER["trainer"], "pass_samples": PASS_SAMPLES},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def train_command(config_path: Path, run_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "stream.cli.main", "train", "--config", str(config_path), "--run-dir", str(run_dir),
        "--log-level", "WARNING", *args,
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}


def train(config_path: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(train_command(config_path, run_dir, *args), cwd=REPO_ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def contents(run_dir: Path) -> list[dict]:
    return [m.to_dict() for m in read_manifests(run_dir)]


def test_two_ranks_train_every_sample_once_like_one_process(pipeline_config, tmp_path):
    config = small_config(pipeline_config, pass_samples=PASS_SAMPLES)
    samples = simulated_samples(config, 1700)
    fill_samples_topic(config, samples[:1500])
    config_path = write_config(pipeline_config, tmp_path / "config.yaml")
    train(config_path, tmp_path / "one", "--stop-at-end")
    done = train(config_path, tmp_path / "two", "--stop-at-end", "--world-size", "2")
    assert "by 2 ranks" in done.stdout

    one, two = read_manifests(tmp_path / "one"), read_manifests(tmp_path / "two")
    assert [m.to_dict() for m in two] == [m.to_dict() for m in one]
    ends: dict[int, int] = {}
    for manifest in two:  # contiguous ranges from the start to the end of every partition
        for r in manifest.ranges:
            assert r.start_offset == ends.get(r.partition, 0)
            ends[r.partition] = r.end_offset
    assert sum(m.samples for m in two) == 1500 and sum(ends.values()) == 1500
    records_one, records_two = read_pass_records(tmp_path / "one"), read_pass_records(tmp_path / "two")
    assert [r.table_rows for r in records_two] == [r.table_rows for r in records_one]
    for task in records_one[0].auc:
        a = np.array([r.auc[task] for r in records_one])
        b = np.array([r.auc[task] for r in records_two])
        np.testing.assert_allclose(b, a, atol=2e-3, err_msg=task)  # float rounding only

    checkpoints = tmp_path / "two" / "checkpoints"
    assert json.loads((checkpoints / COMMIT_FILE).read_text()) == {"pass_index": len(two) - 1, "world_size": 2}
    model_json = json.loads((tmp_path / "two" / "model" / f"pass-{len(two) - 1:09d}" / "model.json").read_text())
    assert model_json["table_dirs"] == ["table/shard-0-of-2", "table/shard-1-of-2"]
    held_out = [s.impression for s in samples[1500:]]
    scored_one = ExportedModel.load(tmp_path / "one" / "model").score(held_out)
    latest = ExportedModel.load(tmp_path / "two" / "model")
    scored_two = latest.score(held_out)
    np.testing.assert_allclose(
        [list(s.probabilities.values()) for s in scored_two], [list(s.probabilities.values()) for s in scored_one],
        atol=1e-3,
    )  # fmt: skip
    # pepnet serve follows a sharded export: two passes back, it applies both shards' deltas in place.
    live = LiveModel(tmp_path / "two" / "model", ExportedModel.load(tmp_path / "two" / "model", len(two) - 3), 0.0)
    update = live.poll()
    assert isinstance(update, PassUpdate) and len(update.deltas) == 4  # 2 passes x 2 shards
    live.apply(update)
    assert live.pass_index == len(two) - 1
    assert [s.probabilities for s in live.score(held_out)[1]] == [s.probabilities for s in scored_two]


def test_a_run_changes_its_world_size_between_committed_passes(pipeline_config, tmp_path):
    config = small_config(pipeline_config, pass_samples=PASS_SAMPLES)
    fill_samples_topic(config, simulated_samples(config, 1000))
    config_path = write_config(pipeline_config, tmp_path / "config.yaml")
    train(config_path, tmp_path / "straight", "--stop-at-end")
    run = tmp_path / "changing"
    train(config_path, run, "--max-passes", "3")  # one process
    train(config_path, run, "--max-passes", "6", "--world-size", "2")  # 1 -> 2: the table is split
    assert json.loads((run / "checkpoints" / COMMIT_FILE).read_text()) == {"pass_index": 5, "world_size": 2}
    assert ExportedModel.load(run / "model").pass_index == 5
    train(config_path, run, "--stop-at-end")  # 2 -> 1: the shards are merged
    assert contents(run) == contents(tmp_path / "straight")
    records = read_pass_records(run)
    assert [r.pass_index for r in records] == list(range(len(contents(run))))
    assert [r.table_rows for r in records] == [r.table_rows for r in read_pass_records(tmp_path / "straight")]
    assert ExportedModel.load(run / "model").pass_index == len(records) - 1


# ---------------------------------------------------------------------- kill -9
PASSES, KILLS = 16, 4


def logged_passes(run_dir: Path) -> int:
    path = run_dir / "passes.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def rank_processes(launcher: subprocess.Popen, killed: Collection[int] = ()) -> list[psutil.Process]:
    """The launcher's trainer ranks, leaving out the pids in ``killed`` (the incarnation killed last)."""

    def is_rank(process: psutil.Process) -> bool:
        try:
            return process.pid not in killed and "stream.cli.main" in process.cmdline()
        except psutil.Error:  # gone (or a zombie) since it was listed
            return False

    try:
        return [p for p in psutil.Process(launcher.pid).children() if is_rank(p)]
    except psutil.NoSuchProcess:
        return []


def final_sharded_state(run_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    """The committed pass's dense state (rank 0's), every shard's table arrays and counters (from
    its checkpoint chain) and every shard's state.json."""
    from embedding_store.table import EmbeddingTable
    from embedding_store.table_files import table_state
    from stream.trainer.checkpoint import CheckpointStore

    checkpoints = run_dir / "checkpoints"
    commit = json.loads((checkpoints / COMMIT_FILE).read_text())
    chains = [
        CheckpointStore(checkpoints / f"shard-{r}-of-2", keep_chains=2).chain_of(commit["pass_index"]) for r in range(2)
    ]
    dense = torch.load(chains[0][-1] / "dense.pt", weights_only=True)
    tables = []
    for chain in chains:
        arrays, meta = table_state(EmbeddingTable.load_checkpoint_chain([link / "table.npz" for link in chain]))
        meta.pop("export_dir")  # the run's own model directory
        tables.append({name: values.copy() for name, values in arrays.items()})
        tables[-1]["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    states = [json.loads((chain[-1] / "state.json").read_text()) for chain in chains]
    return dense, tables, states


def test_kill_9_of_either_rank_equals_an_uninterrupted_run(pipeline_config, tmp_path):
    config = small_config(pipeline_config, pass_samples=PASS_SAMPLES)
    fill_samples_topic(config, simulated_samples(config, 2000))
    config_path = write_config(pipeline_config, tmp_path / "config.yaml")
    ranks = ("--world-size", "2", "--max-passes", str(PASSES))
    train(config_path, tmp_path / "straight", *ranks)

    killed = tmp_path / "killed"
    rng = np.random.default_rng(14)
    launcher = subprocess.Popen(
        train_command(config_path, killed, *ranks, "--max-restarts", str(KILLS)), cwd=REPO_ROOT, env=clean_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    victims = [int(v) for v in rng.permutation([0, 1, *rng.integers(0, 2, KILLS - 2)])]  # each rank at least once
    killed_pids: set[int] = set()
    try:
        for victim in victims:
            deadline = time.monotonic() + 240
            while (
                len(rank_processes(launcher, killed_pids)) < 2
                and launcher.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            # A random moment: after 1-2 more passes are committed, plus 0-200 ms into the next one.
            target = logged_passes(killed) + int(rng.integers(1, 3))
            while logged_passes(killed) < target and launcher.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, 0.2)))
            if launcher.poll() is not None:
                pytest.fail(f"the run ended before every kill: {launcher.communicate()[1]}")
            processes = rank_processes(launcher, killed_pids)
            assert len(processes) == 2, processes
            processes[victim].send_signal(signal.SIGKILL)
            killed_pids = {p.pid for p in processes}
        _, stderr = launcher.communicate(timeout=600)
    finally:
        if launcher.poll() is None:  # never leave ranks behind when the test fails
            for process in rank_processes(launcher):
                process.kill()
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 0, stderr

    assert contents(killed) == contents(tmp_path / "straight") and len(contents(killed)) == PASSES
    records_straight, records_killed = read_pass_records(tmp_path / "straight"), read_pass_records(killed)
    assert [r.pass_index for r in records_killed] == list(range(PASSES))
    assert [str(r.auc) for r in records_killed] == [str(r.auc) for r in records_straight]
    dense_a, tables_a, states_a = final_sharded_state(tmp_path / "straight")
    dense_b, tables_b, states_b = final_sharded_state(killed)
    assert dense_tensors_equal(dense_a, dense_b)
    for shard_a, shard_b in zip(tables_a, tables_b, strict=True):
        assert shard_a.keys() == shard_b.keys()
        for name in shard_a:
            assert shard_a[name].tobytes() == shard_b[name].tobytes(), name
    assert [s["next_offsets"] for s in states_a] == [s["next_offsets"] for s in states_b]
