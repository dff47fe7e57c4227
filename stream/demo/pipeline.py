"""``pepnet demo``: the whole pipeline on this machine in a few minutes.

Local broker -> fresh topics -> simulated impressions and actions -> ``pepnet worker`` (the
joiner, a subprocess) -> incremental trainer for a few passes -> a per-pass table, the exported
model and the run report. The join window is shortened so that a couple of minutes of simulated
traffic close many windows; everything else is the configured pipeline.

The run directory also gets what the commands after the demo need: ``config.yaml`` (the demo's
broker, topics and join window: ``--config runs/demo-latest/config.yaml`` points any command at
them) and ``holdout.jsonl`` (labelled samples of a stream the model never saw, for ``pepnet score
--input``); ``runs/demo-latest`` links to the newest demo run.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from monitoring.run_log import PassRecord
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig, load_config
from stream.demo.settings import DemoSettings
from stream.kafka.config import TopicsConfig
from stream.storage.atomic_file import atomic_text_writer

# Event-time join window of the demo: 200 simulated impressions/s close a window every ~30 s.
DEMO_WINDOW_MS = 30_000
DEMO_GRACE_MS = 5_000
LATEST_LINK = Path("runs") / "demo-latest"
HOLDOUT_SAMPLES = 2000


@dataclass
class DemoResult:
    """Where the demo wrote its run and model, the pass records and the report plots."""

    run_dir: Path
    model_dir: Path
    records: list[PassRecord] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def demo_overrides(stamp: str, bootstrap: str) -> dict:
    """Topics of their own (kept forever: simulated event times are years old), short join window."""
    topics = {
        role: {"name": f"demo.{stamp}.{role}", "settings": {"retention.ms": "-1"}} for role in TopicsConfig().by_role()
    }
    return {
        "kafka": {"bootstrap": bootstrap, "topics": topics},
        "joiner": {"window_ms": DEMO_WINDOW_MS, "grace_ms": DEMO_GRACE_MS, "app_id": f"pepnet-demo-{stamp}"},
        "monitoring": {"trainer_port": 0, "worker_port": 0},
    }


def worker_environment(config: PipelineConfig) -> dict[str, str]:
    """PEPNET_* variables that point a ``pepnet worker`` subprocess at the demo's broker and topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    env["PEPNET_KAFKA_BOOTSTRAP"] = config.kafka.bootstrap_servers
    for role, topic in config.kafka.topics.by_role().items():
        env[f"PEPNET_KAFKA_TOPICS_{role.upper()}_NAME"] = topic.name
    env["PEPNET_JOINER_WINDOW_MS"] = str(config.joiner.window_ms)
    env["PEPNET_JOINER_GRACE_MS"] = str(config.joiner.grace_ms)
    env["PEPNET_JOINER_APP_ID"] = config.joiner.app_id
    env["PEPNET_MONITORING_WORKER_PORT"] = "0"
    return env


def run_demo(
    config_path: str | None,
    settings: DemoSettings,
    say: Callable[[str], None] = print,
    finished: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the demo (see the module docstring); ``say`` prints progress lines. ``finished`` gets the
    result once training, the holdout file and the report are done, while the worker and the
    trainer's metrics endpoint still serve (``settings.hold_metrics`` keeps them up until it returns)."""
    from stream.kafka.broker import LocalBroker
    from stream.kafka.topics import create_topics
    from stream.simulator.generator import EventSimulator
    from stream.simulator.publisher import PublishOptions, publish_simulation
    from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths

    base = load_config(config_path)
    stamp = str(int(time.time()))
    broker = None
    started_broker = False
    if base.kafka.uses_local_broker:
        broker = LocalBroker(base.kafka.local_broker)
        start = broker.up()
        started_broker = not start.reused
        say(f"broker: {start.state.bootstrap} ({'reused' if start.reused else 'started'})")
    overrides = demo_overrides(stamp, base.kafka.bootstrap_servers)
    overrides["trainer"] = {"pass_samples": settings.pass_samples}
    run_dir = Path(settings.run_dir or Path("runs") / f"demo-{stamp}")
    overrides["run_dir"] = str(run_dir)
    config = load_config(config_path, overrides=overrides)
    create_topics(config.kafka)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_demo_config(run_dir / "config.yaml", config_path, overrides)
    if not settings.run_dir:
        point_latest_link(run_dir)
    paths = TrainerPaths.from_config(config, str(run_dir))
    trainer = IncrementalTrainer(config, paths)
    worker_log = open(run_dir / "worker.log", "wb")  # noqa: SIM115 - closed in finally
    command = [sys.executable, "-m", "stream.cli.main", "worker", "--log-level", "WARNING"]
    if config_path:
        command += ["--config", str(config_path)]
    worker = subprocess.Popen(command, env=worker_environment(config), stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        say(f"worker: pid {worker.pid}, log {run_dir / 'worker.log'}")
        simulator = EventSimulator(config.simulator, config.schema)
        report = publish_simulation(simulator, config.kafka, PublishOptions(impressions=settings.impressions))
        say(f"simulator: {report.summary()}")
        # The trainer says what it reads and where its metrics are, then reports each pass once, by
        # its own log lines. Its endpoint stays up until `finished` returned.
        summary = trainer.run(RunOptions(settings.passes, idle_timeout_s=settings.idle_timeout_s,
                                         keep_metrics_endpoint=True))  # fmt: skip
        if worker.poll() is not None:
            raise UserError(f"the worker exited early (code {worker.returncode}); see {run_dir / 'worker.log'}")
        write_holdout(config, run_dir / "holdout.jsonl", HOLDOUT_SAMPLES)
        result = DemoResult(run_dir, paths.model_dir, summary.passes, render_report(run_dir, summary.passes, say))
        if finished is not None:
            finished(result)
    finally:
        trainer.close_metrics()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        if broker is not None and started_broker and not settings.keep_broker:
            broker.down()
    return result


def render_report(run_dir: Path, records: list[PassRecord], say: Callable[[str], None]) -> list[Path]:
    """The run report's plots (none without passes, or with a line saying why they were not drawn)."""
    if not records:
        return []
    try:
        from monitoring.report import render_run_report

        return [Path(p.path) for p in render_run_report(run_dir)]
    except (ImportError, ValueError, OSError) as error:
        say(f"report: not rendered ({error})")
        return []


# Tasks with their own loss and AUC columns; more would not fit a terminal line.
TABLE_TASKS = 3


def write_demo_config(path: Path, config_path: str | None, overrides: dict) -> None:
    """The demo's settings as a config file for the commands after the demo (replay, score, topics)."""
    import yaml

    from stream.config.loader import load_yaml, merge

    data = merge(load_yaml(config_path), overrides) if config_path else overrides
    header = "# Written by `pepnet demo`: its broker, topics, join window and run directory.\n"
    with atomic_text_writer(path) as f:
        f.write(header + yaml.safe_dump(data, sort_keys=False))


def point_latest_link(run_dir: Path) -> None:
    """Make ``runs/demo-latest`` a relative symbolic link to ``run_dir`` (replaced atomically)."""
    LATEST_LINK.parent.mkdir(parents=True, exist_ok=True)
    temporary = LATEST_LINK.with_name(f".{LATEST_LINK.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(run_dir.resolve(), LATEST_LINK.parent.resolve()))
    os.replace(temporary, LATEST_LINK)


def write_holdout(config: PipelineConfig, path: Path, samples: int) -> None:
    """Labelled samples of a stream the model never saw (the simulator with seed + 1), one JSON per
    line as on the samples topic: the input of ``pepnet score --input``."""
    from stream.events.formats import encode
    from stream.simulator.generator import EventSimulator

    simulator = EventSimulator(replace(config.simulator, seed=config.simulator.seed + 1), config.schema)
    with atomic_text_writer(path) as f:
        for sample, _oracle in simulator.labelled_samples(samples, config.joiner.window_ms):
            f.write(encode(sample).decode() + "\n")


def pass_table(records: list[PassRecord], tasks: list[str]) -> str:
    """The per-pass table: samples, loss and AUC per task, table rows/bytes, evictions, samples/s.

    The first ``TABLE_TASKS`` tasks get columns; a last line names the others with the AUC of the
    last pass, so that no task is left out silently.
    """
    shown, hidden = tasks[:TABLE_TASKS], tasks[TABLE_TASKS:]
    head = ["pass", "samples"] + [f"loss:{t}" for t in shown] + [f"auc:{t}" for t in shown]
    head += ["rows", "table MiB", "evicted", "samples/s"]
    rows = [head]
    for r in records:
        rows.append(
            [str(r.pass_index), str(r.samples)]
            + [_num(r.loss.get(t)) for t in shown]
            + [_num(r.auc.get(t)) for t in shown]
            + [str(r.table_rows), f"{r.table_bytes / 2**20:.1f}", str(sum(r.evictions.values()))]
            + [f"{r.samples_per_s:.0f}"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    if hidden and records:
        last = records[-1]
        aucs = ", ".join(f"{t} {_num(last.auc.get(t))}" for t in hidden)
        lines.append(f"not in the table: {', '.join(hidden)} (last pass AUC {aucs}; "
                     "every task in passes.jsonl and plots/auc.png)")  # fmt: skip
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"
