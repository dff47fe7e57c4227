"""Loading the shipped KuaiRand-Pure copy, and the delay model's window probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from stream.simulator.config import KNOWN_TASKS, SimulatorConfig
from stream.simulator.delays import ActionDelayModel
from stream.simulator.generator import resolve_data_dir
from stream.simulator.population import load_population

DOMAINS = ["tab0", "tab1", "tab2", "tab4", "tab6"]


@pytest.fixture(scope="module")
def population():
    return load_population(resolve_data_dir(SimulatorConfig().data_dir), DOMAINS)


def test_real_users_videos_and_authors(population):
    users, videos = population.users, population.videos
    assert len(users) == 27_285 and len(np.unique(users.user_id)) == 27_285
    assert len(videos) == 7_583 and len(np.unique(videos.item_id)) == 7_583
    assert len(np.unique(videos.author_id)) > 6_000
    # Quoted fields holding commas survive intact.
    assert "[100,1k)" in set(users.columns["fans_user_num_range"])
    assert "(250,500]" in set(users.columns["follow_user_num_range"])
    # Multi-valued tags ("39,68") become lists of ints; every video has at least one.
    assert any(len(t) == 2 for t in videos.tags) and all(len(t) >= 1 for t in videos.tags)
    assert all(isinstance(v, int) for v in users.columns["onehot_feat2"])
    assert (videos.duration_s > 0).all() and np.isfinite(videos.duration_s).all()
    assert set(videos.upload_day_offset.tolist()) == {0, 1, 2}


def test_domain_stats_follow_tab_stats(population):
    domains = population.domains
    assert domains.names == DOMAINS
    assert domains.traffic_share.sum() == pytest.approx(1.0)
    assert np.argmax(domains.traffic_share) == DOMAINS.index("tab1")
    np.testing.assert_allclose(domains.click_rate, [0.116, 0.444, 0.424, 0.544, 0.178], atol=0.001)


def test_unknown_domain_or_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="domains: 'tab99' is not in tab_stats.csv"):
        load_population(resolve_data_dir(SimulatorConfig().data_dir), ["tab1", "tab99"])
    with pytest.raises(ValueError, match="domains: the simulator needs KuaiRand tab names"):
        load_population(resolve_data_dir(SimulatorConfig().data_dir), ["feed"])
    with pytest.raises(ValueError, match="^data_dir: .* has no user_features_pure.csv"):
        load_population(tmp_path, DOMAINS)


@pytest.mark.parametrize("window_ms", [5_000, 60_000, 300_000, 1_800_000])
def test_delay_window_probability_matches_the_draws(window_ms):
    model = ActionDelayModel(SimulatorConfig())
    delays = model.sample(np.random.default_rng(3), 100_000)
    assert (delays >= 1).all()
    observed = (delays <= window_ms).mean(axis=0)
    np.testing.assert_allclose(observed, model.probability_within(window_ms), atol=0.01)
    assert delays.shape == (100_000, len(KNOWN_TASKS))
