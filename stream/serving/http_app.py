"""``pepnet serve``'s HTTP service (aiohttp): score impressions with the newest exported pass.

Endpoints (JSON):
    POST /v1/score    one impression (an object) or a batch (an array of them), in the impression
                      format of docs/events.md; answers ``{"pass_index": N, "predictions":
                      [{"impression_id": ..., "probabilities": {task: p}}]}``, every prediction of
                      one response from pass N. Invalid input: 400 ``{"error": {"index", "field",
                      "code", "reason"}}`` by the joiner's validation rules.
    GET  /v1/model    the pass served, when it was exported, the tasks and domains.
    GET  /healthz     200 once a model is loaded.
    GET  /metrics     Prometheus metrics of this process.

Scoring and pass updates run on the event loop's thread, so an update lands between two requests,
never inside one; reading and verifying a new pass happens on a worker thread meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from monitoring.serving_metrics import ServingMetrics
from stream.events.formats import Impression
from stream.events.validation import EventValidator, InvalidEvent
from stream.serving.config import ServingConfig
from stream.serving.live_model import LiveModel, PassUpdate, UpdateFailed

log = logging.getLogger(__name__)

LIVE_MODEL = web.AppKey("live_model", LiveModel)
_MODEL_FOLLOWER = web.AppKey("model_follower", asyncio.Task)


class ServingApp:
    """The request handlers and the task that follows ``LATEST``; ``build()`` gives the aiohttp app."""

    def __init__(
        self,
        live: LiveModel,
        validator: EventValidator,
        config: ServingConfig,
        registry: CollectorRegistry,
        metrics: ServingMetrics,
    ) -> None:
        self.live = live
        self.validator = validator
        self.config = config
        self.registry = registry
        self.metrics = metrics
        self._failed: tuple[int | None, str] | None = None  # the last failure said, not to repeat it
        metrics.serving(live.pass_index, live.exported_at)

    def build(self) -> web.Application:
        """The aiohttp application (request body limit ``config.max_request_bytes``)."""
        app = web.Application(client_max_size=self.config.max_request_bytes)
        app[LIVE_MODEL] = self.live
        app.router.add_post("/v1/score", self.score)
        app.router.add_get("/v1/model", self.describe)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/metrics", self.metrics_page)
        app.cleanup_ctx.append(self._follow_exports)
        return app

    # ------------------------------------------------------------------ requests
    async def score(self, request: web.Request) -> web.Response:
        """POST /v1/score: validate, score with the live pass, answer."""
        started = time.perf_counter()
        try:
            impressions = self._parse(await request.read())
        except InvalidEvent as error:
            return self._answer(400, {"error": _error_body(error)}, started)
        except web.HTTPRequestEntityTooLarge:
            body = {"error": {"field": "", "code": "oversized", "reason": "request body too large"}}
            return self._answer(413, body, started)
        pass_index, scored = self.live.score(impressions)
        predictions = [{"impression_id": s.impression_id, "probabilities": s.probabilities} for s in scored]
        return self._answer(200, {"pass_index": pass_index, "predictions": predictions}, started, len(scored))

    def _parse(self, body: bytes) -> list[Impression]:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidEvent("", f"request body is not JSON ({error})", "bad_json") from None
        items = document if isinstance(document, list) else [document]
        if not items:
            raise InvalidEvent("", "an empty batch: send an impression or a non-empty array of them", "not_object")
        if len(items) > self.config.max_batch:
            raise InvalidEvent(
                "", f"{len(items)} impressions in one request, at most {self.config.max_batch}", "oversized"
            )
        impressions = []
        for index, item in enumerate(items):
            try:
                impressions.append(self.validator.impression(json.dumps(item).encode()))
            except InvalidEvent as error:
                error.index = index  # type: ignore[attr-defined]
                raise
        return impressions

    def _answer(self, status: int, body: dict[str, Any], started: float, scored: int = 0) -> web.Response:
        self.metrics.request(status, time.perf_counter() - started, scored)
        return web.json_response(body, status=status)

    async def describe(self, request: web.Request) -> web.Response:
        """GET /v1/model: what is being served."""
        schema = self.live.model.model.schema
        return web.json_response(
            {
                "model_dir": str(self.live.model_dir),
                "pass_index": self.live.pass_index,
                "exported_at": self.live.exported_at,
                "tasks": schema.task_names,
                "domains": schema.domains,
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        """GET /healthz: the pass served (a model is always loaded once the server listens)."""
        return web.json_response({"status": "ok", "pass_index": self.live.pass_index})

    async def metrics_page(self, request: web.Request) -> web.Response:
        """GET /metrics: this process's Prometheus metrics."""
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------------ following the trainer
    async def _follow_exports(self, app: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(self._follow_loop())
        app[_MODEL_FOLLOWER] = task
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _follow_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.config.poll_interval_ms / 1000.0
        while True:
            await self.follow_once(loop)
            await asyncio.sleep(interval_s)

    async def follow_once(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Read a newer pass on a worker thread, then apply it here; True if the served pass moved."""
        loop = loop or asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            update = await loop.run_in_executor(None, self.live.poll)
        except UpdateFailed as failure:
            self._say_failure(failure)
            return False
        if update is None:
            return False
        before = self.live.pass_index
        self.live.apply(update)  # on the loop's thread: between two requests
        seconds = time.perf_counter() - started
        if isinstance(update, PassUpdate):
            upserted, deleted = update.rows
            self.metrics.updated("delta", seconds, upserted, deleted)
            how = f"{len(update.deltas)} delta(s), {upserted} rows upserted, {deleted} deleted"
        else:
            self.metrics.updated("rebuild", seconds)
            how = "rebuilt from the snapshot chain"
        self.metrics.serving(self.live.pass_index, self.live.exported_at)
        self._failed = None
        log.info("serving pass %d (was %d): %s in %.3f s", self.live.pass_index, before, how, seconds)
        return True

    def _say_failure(self, failure: UpdateFailed) -> None:
        said = (self.live.pass_index, str(failure))
        if said == self._failed:
            return  # said once; the next poll tries again quietly
        self._failed = said
        self.metrics.update_failures.labels(failure.reason).inc()
        log.warning("%s; still serving pass %d", failure, self.live.pass_index)


def _error_body(error: InvalidEvent) -> dict[str, Any]:
    return {"index": getattr(error, "index", 0), "field": error.field, "code": error.code, "reason": error.reason}
