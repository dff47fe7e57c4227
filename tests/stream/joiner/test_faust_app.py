"""The faust engine's app object without a broker: what it does at faust's recovery hooks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from stream.config.pipeline import load_config
from stream.events.validation import REASONS
from stream.joiner.faust_app import JoinerApp

IMPRESSIONS, ACTIONS = "t.impressions", "t.actions"


def make_app(tmp_path: Path) -> JoinerApp:
    topics = {"impressions": {"name": IMPRESSIONS, "partitions": 2}, "actions": {"name": ACTIONS, "partitions": 2}}
    joiner = {"engine": "faust", "app_id": "t-faust-app", "faust": {"data_dir": str(tmp_path / "faust")}}
    config = load_config(overrides={"kafka": {"topics": topics}, "joiner": joiner}, environ={})
    return JoinerApp(config.kafka, config.schema, config.joiner, JoinerMetrics(CollectorRegistry(), REASONS))


def test_records_fetched_while_faust_seeks_after_recovery_are_not_dropped(tmp_path: Path) -> None:
    """faust 0.15.3, ``Recovery.on_recovery_completed``: it calls the table's on_recover callbacks,
    resumes the input partitions, awaits ``perform_seek()`` while the fetcher runs, and only then
    calls ``flow_control.resume()``, which empties every stream queue (they are clear_on_resume).
    Records the fetcher had put into a queue during the seek were dropped while the consumer's read
    offsets had moved past them: after a restart under live input, actions and impressions were lost.
    """
    joiner_app = make_app(tmp_path)
    app = joiner_app.app
    assignment = {TP(topic, p) for topic in (IMPRESSIONS, ACTIONS) for p in range(2)}
    app.consumer = SimpleNamespace(assignment=lambda: assignment)  # type: ignore[assignment]

    async def scenario() -> list[Any]:
        flow = app.flow_control
        flow.resume()  # the changelog was read with the flow active
        queue = app.FlowControlQueue(maxsize=100, clear_on_resume=True)  # a stream's queue, as faust makes it

        async def conductor_delivers(record: str) -> None:
            await flow.acquire()  # faust's Conductor waits for the flow before putting a record in a queue
            queue.put_nowait(record)

        await joiner_app._rebuild_joiners()  # the table's on_recover callback
        assert set(joiner_app.processor.joiners) == {0, 1}
        delivery = asyncio.ensure_future(conductor_delivers("impressions[0]@41"))  # fetched during the seek
        await asyncio.sleep(0.01)
        flow.resume()  # faust, once the seek is done: clears the stream queues
        await asyncio.wait_for(delivery, 1)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(scenario()) == ["impressions[0]@41"]
