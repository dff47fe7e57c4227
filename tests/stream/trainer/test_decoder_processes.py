"""Decoder processes: the same chunks as the reader thread, in order; failures as one line; no
process outlives the trainer (closed, SIGTERM/SIGINT, or the trainer killed -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import psutil
import pytest

from monitoring.run_log import read_pass_records
from stream.config.pipeline import load_config
from stream.events.batching import SampleBatcher
from stream.events.formats import encode
from stream.kafka.clients import new_producer
from stream.simulator import EventSimulator
from stream.trainer.chunk_decoder import ChunkDecoder
from stream.trainer.decoder_processes import DecoderProcesses
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths, read_manifests
from tests.conftest import REPO_ROOT
from tests.waiting import wait_until

from .kafka_samples import fill_samples_topic, simulated_samples, small_config
from .test_chunk_wire import assert_same_batch
from .test_loop import assert_same_model
from .train_process import (
    clean_env,
    decoder_children,
    logged_passes,
    never_left_running,
    prepare_run,
    train_command,
    write_config,
)


class Collected:
    """What a DecoderProcesses delivers, and the failure it reports."""

    def __init__(self) -> None:
        self.chunks: list[tuple[object, np.ndarray, object, int]] = []
        self.failures: list[BaseException] = []

    def deliver(self, context: object, kept: np.ndarray, batch: object, invalid: int) -> None:
        self.chunks.append((context, kept, batch, invalid))

    def start(self, processes: int) -> DecoderProcesses:
        return DecoderProcesses(load_config(environ={}).schema, processes, self.deliver, self.failures.append)


def sample_values(n: int) -> list[bytes | None]:
    config = load_config(environ={})
    return [encode(s) for s, _ in EventSimulator(config.simulator, config.schema).labelled_samples(n, 300_000)]


def test_processes_decode_like_the_reader_thread_and_deliver_in_submission_order() -> None:
    values = sample_values(900)
    values[10], values[11], values[400] = b"[1, 2]", None, values[401] + b"," + values[402]
    sizes = [1, 300, 7, 250, 2, 40, 300]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(values[start : start + size])
        start += size
    chunks.insert(3, [b"{}", None, b"nope"])  # nothing decodable
    collected = Collected()
    pool = collected.start(processes=2)
    pids = pool.pids
    try:
        for i, chunk in enumerate(chunks):
            assert pool.submit(chunk, i, threading.Event())
        wait_until(lambda: len(collected.chunks) == len(chunks) or collected.failures, "every chunk is back")
    finally:
        pool.close()
    assert not collected.failures
    assert [c[0] for c in collected.chunks] == list(range(len(chunks)))
    reference = ChunkDecoder(SampleBatcher(load_config(environ={}).schema))
    for (_, kept, batch, invalid), chunk in zip(collected.chunks, chunks, strict=True):
        before = reference.invalid
        expected_kept, expected = reference.decode(chunk)
        assert kept.tolist() == expected_kept.tolist() and invalid == reference.invalid - before
        assert (batch is None) == (expected is None)
        if expected is not None:
            assert_same_batch(batch, expected)
    assert reference.invalid == 6
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not alive


def test_a_failure_inside_a_process_reaches_the_trainer_as_one_line() -> None:
    collected = Collected()
    pool = collected.start(processes=1)
    try:
        requests = pool._processes[0].requests  # a request whose two frames disagree (a broken sender)
        requests.send_bytes(np.array([5], dtype="<i8").tobytes())
        requests.send_bytes(b"abc")
        assert pool.submit([b"{}"], "after", threading.Event())  # waits for an answer that is the failure
        wait_until(lambda: collected.failures, "the failure is reported")
    finally:
        pool.close()
    message = str(collected.failures[0])
    assert message.startswith("decoder process 0 (pid ")
    assert "failed: ValueError: a request's 1 value lengths" in message
    assert message.endswith("or set trainer.decoder_processes: 0 to decode in the trainer's own process")
    assert "\n" not in message and not collected.chunks


@pytest.mark.parametrize("submit_after", [False, True], ids=["idle", "then-submit"])
def test_a_killed_process_is_reported_as_one_line(submit_after: bool) -> None:
    """Also when nothing is in flight (the topic is idle): the collector watches the pipes."""
    collected = Collected()
    pool = collected.start(processes=1)
    try:
        os.kill(pool.pids[0], signal.SIGKILL)
        try:
            if submit_after:
                pool.submit(sample_values(50), "after", threading.Event())
        except Exception as error:  # the pipe broke while sending: the same line, raised in the reader thread
            collected.failures.append(error)
        wait_until(lambda: collected.failures, "the end is reported")
    finally:
        pool.close()
    message = str(collected.failures[0])
    assert "ended unexpectedly (killed by SIGKILL); restart the trainer" in message and "\n" not in message


PARENT = """
import sys
import torch  # a parent that imports torch (as benchmarks/trainer.py does): the decoders must not
from stream.config.pipeline import load_config
from stream.trainer.decoder_processes import DecoderProcesses
pool = DecoderProcesses(load_config(environ={}).schema, 2, print, print)
print(*pool.pids, flush=True)
sys.stdin.read()  # held until the test kills it (or ends: its end of the pipe closes)
"""


def mapped_libraries(process: psutil.Process) -> str:
    return "\n".join(m.path for m in process.memory_maps())


def test_decoder_processes_load_no_torch_and_end_when_their_parent_is_killed_9() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    with never_left_running(parent):
        children = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
        assert len(children) == 2 and all(c.ppid() == parent.pid for c in children)
        assert "libtorch" in mapped_libraries(psutil.Process(parent.pid))
        wait_until(lambda: all("msgspec" in mapped_libraries(c) for c in children), "the decoders are ready")
        assert not any("libtorch" in mapped_libraries(c) or "rdkafka" in mapped_libraries(c) for c in children)
        parent.kill()
        parent.wait()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive


@pytest.mark.kafka
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_pepnet_train_stopped_by_a_signal_exits_0_and_leaves_no_decoder_process(
    pipeline_config, tmp_path, stop_signal
) -> None:
    config_path, run_dir = prepare_run(pipeline_config, tmp_path, 600)
    write_config(pipeline_config, config_path, decoder_processes=2)
    trainer = subprocess.Popen(train_command(config_path, run_dir), cwd=REPO_ROOT, env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    with never_left_running(trainer):
        wait_until(lambda: logged_passes(run_dir) >= 2 or trainer.poll() is not None, "2 passes are logged")
        children = decoder_children(trainer.pid)
        assert len(children) == 2
        trainer.send_signal(stop_signal)
        _, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 0, err
    assert "Traceback" not in err
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive  # the trainer closed them before exiting


@pytest.mark.kafka
def test_pepnet_train_whose_decoder_process_is_killed_stops_with_one_line(pipeline_config, tmp_path) -> None:
    config_path, run_dir = prepare_run(pipeline_config, tmp_path, 600)
    trainer = subprocess.Popen(train_command(config_path, run_dir), cwd=REPO_ROOT, env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    with never_left_running(trainer):
        wait_until(lambda: logged_passes(run_dir) >= 1 or trainer.poll() is not None, "a pass is logged")
        (child,) = decoder_children(trainer.pid)
        child.kill()
        _, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: decoder process 0 (pid "), err
    assert "ended unexpectedly (killed by SIGKILL); restart the trainer" in lines[0]
    records = read_pass_records(run_dir)
    assert [r.pass_index for r in records] == list(range(len(records)))  # what was trained is checkpointed


@pytest.mark.kafka
def test_the_reader_thread_and_two_decoder_processes_train_the_same_passes_and_model(pipeline_config, tmp_path):
    config = small_config(pipeline_config, decoder_processes=0)
    samples = simulated_samples(config, 900)
    fill_samples_topic(config, samples)
    producer = new_producer(config.kafka, name="test producer")
    topic = config.kafka.topics.samples.name
    for value in (b'{"not": "a sample"', encode(samples[0]).replace(b'"user_id":', b'"user_id":1' + b"0" * 30)):
        producer.produce(topic, value, b"7")
    producer.flush(30)
    summaries = {}
    for processes in (0, 2):
        run_dir = tmp_path / f"processes-{processes}"
        configured = small_config(pipeline_config, decoder_processes=processes)
        trainer = IncrementalTrainer(configured, TrainerPaths.from_config(configured, str(run_dir)))
        summaries[processes] = trainer.run(RunOptions(stop_at_end=True))
    assert summaries[0].invalid_messages == summaries[2].invalid_messages == 2
    manifests = [m.to_dict() for m in read_manifests(tmp_path / "processes-0")]
    assert len(manifests) >= 4 and manifests == [m.to_dict() for m in read_manifests(tmp_path / "processes-2")]
    assert_same_model(tmp_path / "processes-0", tmp_path / "processes-2")
