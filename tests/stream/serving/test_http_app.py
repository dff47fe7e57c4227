"""The scoring service over real HTTP on loopback: answers, validation errors, following new passes."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.registry import CollectorRegistry

from monitoring.serving_metrics import ServingMetrics
from stream.config.pipeline import load_config
from stream.events.formats import encode
from stream.events.validation import EventValidator
from stream.scoring.exported_model import ExportedModel
from stream.serving.config import ServingConfig
from stream.serving.http_app import ServingApp
from stream.serving.live_model import LiveModel
from tests.stream.scoring.model_dirs import PassWriter


def make_service(model_dir, **serving) -> ServingApp:
    live = LiveModel.load(model_dir)
    registry = CollectorRegistry()
    validator = EventValidator(live.model.model.schema, load_config(environ={}).joiner.validation)
    return ServingApp(live, validator, ServingConfig(**serving), registry, ServingMetrics(registry))


def run(coroutine_function, service: ServingApp):
    async def main():
        async with TestClient(TestServer(service.build())) as client:
            return await coroutine_function(client)

    return asyncio.run(main())


def impression_json(sample) -> dict:
    return json.loads(encode(sample.impression))


def test_scores_one_impression_and_a_batch_with_the_pass_it_used(tmp_path):
    writer = PassWriter(tmp_path)
    writer.write_pass()
    service = make_service(tmp_path)
    held_out = writer.held_out(8)

    async def calls(client):
        one = await client.post("/v1/score", json=impression_json(held_out[0]))
        batch = await client.post("/v1/score", json=[impression_json(s) for s in held_out])
        metrics = await client.get("/metrics")
        return (one.status, await one.json()), (batch.status, await batch.json()), await metrics.text()

    (status_one, one), (status_batch, batch), metrics = run(calls, service)
    assert status_one == status_batch == 200
    assert one["pass_index"] == batch["pass_index"] == 0
    assert [p["impression_id"] for p in batch["predictions"]] == [s.sample_id for s in held_out]
    offline = ExportedModel.load(tmp_path).score([s.impression for s in held_out])
    served = np.array([list(p["probabilities"].values()) for p in batch["predictions"]], dtype=np.float32)
    expected = np.array([list(s.probabilities.values()) for s in offline], dtype=np.float32)
    assert served.tobytes() == expected.tobytes()  # JSON floats carry float32 values exactly
    # A batch of one runs other matrix shapes than a batch of eight: equal up to float32 rounding.
    alone = np.array(list(one["predictions"][0]["probabilities"].values()), dtype=np.float32)
    np.testing.assert_allclose(alone, served[0], rtol=1e-5, atol=1e-7)
    assert 'pepnet_serve_requests_total{status="200"} 2.0' in metrics
    assert "pepnet_serve_pass 0.0" in metrics


def test_invalid_input_is_a_400_naming_the_field_and_the_reason(tmp_path):
    writer = PassWriter(tmp_path)
    writer.write_pass()
    service = make_service(tmp_path, max_batch=4)
    good = impression_json(writer.held_out(1)[0])
    cases = {
        "unknown_domain": [good, dict(good, domain="no-such-tab")],
        "missing_field": {k: v for k, v in good.items() if k != "item_id"},
        "bad_json": b"{not json",
        "oversized": [good] * 5,
    }

    async def calls(client):
        answers = {}
        for name, body in cases.items():
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = await client.post("/v1/score", data=data, headers={"Content-Type": "application/json"})
            answers[name] = (response.status, await response.json())
        return answers

    answers = run(calls, service)
    assert all(status == 400 for status, _ in answers.values())
    unknown = answers["unknown_domain"][1]["error"]
    reason = "unknown domain 'no-such-tab'"
    assert unknown == {"index": 1, "field": "domain", "code": "unknown_domain", "reason": reason}
    assert answers["missing_field"][1]["error"]["field"] == "item_id"
    assert answers["bad_json"][1]["error"]["code"] == "bad_json"
    assert answers["oversized"][1]["error"]["code"] == "oversized"


def test_follows_new_passes_and_keeps_serving_through_a_damaged_one(tmp_path):
    writer = PassWriter(tmp_path, snapshot_every_passes=10)
    writer.write_pass()
    service = make_service(tmp_path)
    sample = impression_json(writer.held_out(1)[0])

    async def calls(client):
        seen = []
        writer.write_pass()
        assert await service.follow_once()
        seen.append((await (await client.post("/v1/score", json=sample)).json())["pass_index"])
        writer.write_pass()
        (tmp_path / "pass-000000002" / "dense.pt").write_bytes(b"damaged")
        assert not await service.follow_once()
        assert not await service.follow_once()  # the same failure is said once
        seen.append((await (await client.post("/v1/score", json=sample)).json())["pass_index"])
        return seen, await (await client.get("/metrics")).text()

    seen, metrics = run(calls, service)
    assert seen == [1, 1]
    assert 'pepnet_serve_update_failures_total{reason="damaged"} 1.0' in metrics
    assert 'pepnet_serve_update_seconds_count{kind="delta"} 1.0' in metrics
