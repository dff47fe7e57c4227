"""The joiner section: defaults load, bad values are named by their key."""

from __future__ import annotations

import pytest

from stream.config.pipeline import ConfigError, load_config


def test_defaults_load() -> None:
    joiner = load_config(environ={}).joiner
    assert joiner.window_ms == 300_000 and joiner.grace_ms == 30_000
    assert joiner.output == "samples" and joiner.validation.max_future_ms == 86_400_000
    policy = joiner.skew_policy()  # half the grace, one hour, three users
    assert (policy.step_ms, policy.max_ahead_ms, policy.jump_users, policy.grace_ms) == (15_000, 3_600_000, 3, 30_000)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"window_ms": 0}, "joiner.window_ms"),
        ({"grace_ms": -1}, "joiner.grace_ms"),
        ({"idle_close_ms": -5}, "joiner.idle_close_ms"),
        ({"validation": {"max_payload_bytes": 0}}, "joiner.validation.max_payload_bytes"),
        ({"faust": {"batch_size": 0}}, "joiner.faust.batch_size"),
        ({"session_timeout_s": 0}, "joiner.session_timeout_s"),
        ({"engine": "spark"}, "joiner.engine"),
        ({"loop": {"batch_size": 0}}, "joiner.loop.batch_size"),
        ({"loop": {"commit_interval_s": 0}}, "joiner.loop.commit_interval_s"),
        ({"clock_step_ms": 30_001}, "joiner.clock_step_ms"),  # above grace_ms: would make events late
        ({"clock_step_ms": -1}, "joiner.clock_step_ms"),
        ({"max_ahead_ms": 10}, "joiner.max_ahead_ms"),
        ({"clock_jump_users": 0}, "joiner.clock_jump_users"),
    ],
)
def test_bad_values_name_their_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides={"joiner": override}, environ={})


def test_environment_override() -> None:
    config = load_config(environ={"PEPNET_JOINER_OUTPUT": "samples_replay"})
    assert config.joiner.output == "samples_replay"
