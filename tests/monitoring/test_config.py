"""MonitoringConfig: defaults bind loopback, bad values name the field."""

from __future__ import annotations

import pytest

from monitoring.config import MonitoringConfig


def test_defaults_bind_loopback() -> None:
    config = MonitoringConfig()
    assert config.host == "127.0.0.1" and config.enabled
    assert config.trainer_port != config.worker_port


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trainer_port": 70000}, r"^trainer_port must be in 0..65535, got 70000"),
        ({"worker_port": -1}, r"^worker_port must be in 0..65535, got -1"),
        ({"host": " "}, r"^host must be a non-empty address"),
        ({"kafka_stats_interval_ms": -5}, r"^kafka_stats_interval_ms must be >= 0"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MonitoringConfig(**kwargs)
