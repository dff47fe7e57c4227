"""`pepnet serve` follows a live trainer: every pass served, every answer from exactly one pass.

A real broker and trainer (10 passes) and ``pepnet serve`` as a subprocess answering a steady
stream of requests. After each pass the trainer waits (``on_pass``) until the server reports that
pass, so every pass is picked up however loaded the machine is; requests never stop meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from stream.events.formats import encode
from stream.scoring.exported_model import ExportedModel
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths
from tests.conftest import REPO_ROOT
from tests.stream.trainer.kafka_samples import fill_samples_topic, simulated_samples, small_config

pytestmark = pytest.mark.kafka

PASSES = 10


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def start_server(model_dir: Path, log_dir: Path, deadline_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``pepnet serve`` on a free port; its URL from the start-up line (output kept in ``log_dir``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    env["PEPNET_SERVING_POLL_INTERVAL_MS"] = "50"
    out, err = log_dir / "serve.out", log_dir / "serve.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "serve", "--model-dir", str(model_dir), "--port", "0"],
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    deadline = time.monotonic() + deadline_s
    while (match := re.search(r"on (http://127\.0\.0\.1:\d+)", out.read_text())) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"pepnet serve did not start: {err.read_text()[-2000:]}")
        time.sleep(0.05)
    return process, match.group(1)


def wait_for_pass(url: str, pass_index: int, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    while get_json(url + "/healthz")["pass_index"] < pass_index:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not pick up pass {pass_index} within {deadline_s} s")
        time.sleep(0.02)


def test_serve_follows_the_trainer_pass_by_pass(pipeline_config, tmp_path):
    config = small_config(pipeline_config, keep_exports=PASSES + 2)
    samples = simulated_samples(config, 200 * (PASSES + 4) + 32)
    fill_samples_topic(config, samples[:-32])  # more than 10 passes: a pass closes on every partition's quota
    request_body = json.dumps([json.loads(encode(s.impression)) for s in samples[-32:]]).encode()
    run_dir = tmp_path / "run"
    model_dir = run_dir / "model"
    trainer = IncrementalTrainer(config, TrainerPaths.from_config(config, str(run_dir)))
    server: dict = {}
    first_pass = threading.Event()

    def on_pass(record, manifest) -> None:
        if record.pass_index == 0:
            server["process"], server["url"] = start_server(model_dir, tmp_path)
            first_pass.set()
        wait_for_pass(server["url"], record.pass_index)

    answers: list[tuple[int, dict]] = []
    stop = threading.Event()

    def requests() -> None:
        first_pass.wait(300)
        while not stop.is_set():
            answers.append(post(server["url"] + "/v1/score", request_body))

    requester = threading.Thread(target=requests, daemon=True)
    requester.start()
    try:
        summary = trainer.run(RunOptions(max_passes=PASSES, on_pass=on_pass))
        deadline = time.monotonic() + 60
        while not any(a[1].get("pass_index") == PASSES - 1 for a in answers[-5:]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        requester.join(60)
        process = server.get("process")
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    assert [r.pass_index for r in summary.passes] == list(range(PASSES))
    assert process.returncode == 0, (tmp_path / "serve.err").read_text()[-2000:]
    assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    served = {body["pass_index"] for _, body in answers}
    assert served == set(range(PASSES)), f"passes answered with: {sorted(served)}"
    # Every answer equals, bit for bit, an offline score of the pass it names with the same export.
    impressions = [s.impression for s in samples[-32:]]
    offline = {}
    for pass_index in sorted(served):
        scored = ExportedModel.load(model_dir, pass_index).score(impressions)
        offline[pass_index] = np.array([list(s.probabilities.values()) for s in scored], dtype=np.float32)
    for _, body in answers:
        online = np.array([list(p["probabilities"].values()) for p in body["predictions"]], dtype=np.float32)
        assert online.tobytes() == offline[body["pass_index"]].tobytes(), body["pass_index"]
