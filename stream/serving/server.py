"""Run ``pepnet serve``: load the newest pass of a model directory and answer HTTP until stopped."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from monitoring.process_metrics import register_process_metrics
from monitoring.serving_metrics import ServingMetrics
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.events.validation import EventValidator
from stream.scoring.model_files import ModelFileError, latest_pass
from stream.serving.http_app import ServingApp
from stream.serving.live_model import LiveModel
from stream.trainer.exporter import LATEST_FILE

log = logging.getLogger(__name__)


def build_serving_app(config: PipelineConfig, model_dir: Path) -> ServingApp:
    """The service over ``model_dir``'s newest pass; input validated against that model's schema."""
    live = LiveModel.load(model_dir)
    registry = CollectorRegistry()
    register_process_metrics(registry)
    validator = EventValidator(live.model.model.schema, config.joiner.validation)
    return ServingApp(live, validator, config.serving, registry, ServingMetrics(registry))


def wait_for_first_pass(model_dir: Path, poll_interval_s: float) -> None:
    """Block until ``model_dir`` has an export (only a missing ``LATEST`` is waited for)."""
    announced = False
    while True:
        try:
            latest_pass(model_dir)
            return
        except ModelFileError as error:
            if error.reason != "missing" or (model_dir / LATEST_FILE).exists():
                raise
        if not announced:
            print(f"waiting for the first exported pass in {model_dir}", flush=True)
            announced = True
        time.sleep(poll_interval_s)


def serve(config: PipelineConfig, model_dir: Path, host: str, port: int, wait: bool = False) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp finishes the requests in flight, then returns);
    ``wait``: start once the trainer has exported a first pass instead of failing."""
    import torch

    torch.set_num_threads(config.serving.torch_threads)
    if wait:
        wait_for_first_pass(model_dir, config.serving.poll_interval_ms / 1000.0)
    service = build_serving_app(config, model_dir)
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); pass --port or serving.port") from None
    bound_port = sock.getsockname()[1]
    url = f"http://{host}:{bound_port}"
    print(
        f"serving {model_dir} pass {service.live.pass_index} on {url} "
        f"(POST {url}/v1/score; metrics at {url}/metrics; following {model_dir}/LATEST "
        f"every {config.serving.poll_interval_ms} ms)",
        flush=True,
    )
    web.run_app(service.build(), sock=sock, print=None, handle_signals=True, access_log=None)
