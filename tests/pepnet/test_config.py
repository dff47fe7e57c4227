"""ModelConfig: presets, and one-line errors that start with the field name."""

from __future__ import annotations

import pytest

from pepnet.config import ModelConfig
from stream.config.pipeline import ConfigError, load_config


def test_presets_set_the_adam_rate_unless_given():
    assert ModelConfig().effective_dense_lr == pytest.approx(3e-3)
    assert ModelConfig(preset="paper-online").effective_dense_lr == pytest.approx(5e-6)
    assert ModelConfig(preset="paper-online", dense_lr=1e-4).effective_dense_lr == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"tower_hidden": []}, "tower_hidden"),
        ({"expert_hidden": [0]}, "expert_hidden"),
        ({"mmoe_experts": 0}, "mmoe_experts"),
        ({"dense_lr": -1.0}, "dense_lr"),
        ({"task_weights": {"click": -1.0}}, "task_weights"),
        ({"domain_stats_prior_count": 0.0}, "domain_stats_prior_count"),
        ({"num_threads": -1}, "num_threads"),
    ],
)
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"^{field} "):
        ModelConfig(**changes)


def test_the_loader_names_the_full_key():
    with pytest.raises(ConfigError, match=r"^model\.gamma: "):
        load_config(overrides={"model": {"gamma": -1}})
    with pytest.raises(ConfigError, match=r"model\.task_weights\.share"):
        load_config(overrides={"model": {"task_weights": {"share": 1.0}}})
    assert load_config(overrides={"model": {"preset": "paper-online"}}).model.effective_dense_lr == 5e-6
