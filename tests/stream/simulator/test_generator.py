"""Behaviour of the event simulator: determinism, timing, label rates, new ids, join ground truth."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest

from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, encode
from stream.simulator import EventSimulator, SimulatorConfig
from stream.simulator.generator import resolve_data_dir
from stream.simulator.oracle import read_oracle_jsonl
from stream.simulator.population import load_population

WINDOW_MS = 300_000
RATE_SAMPLES = 50_000


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by average ranks (ties shared)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, ranks) / counts)[inverse]
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@pytest.fixture(scope="module")
def default_config():
    return load_config()


@pytest.fixture(scope="module")
def population(default_config):
    return load_population(resolve_data_dir(default_config.simulator.data_dir), default_config.schema.domains)


@pytest.fixture(scope="module")
def sim(default_config, population) -> EventSimulator:
    return EventSimulator(default_config.simulator, default_config.schema, population)


@pytest.fixture(scope="module")
def labelled(sim):
    """RATE_SAMPLES labelled samples as arrays: domain, labels [n, T], oracle [n, T], item ids."""
    domains, labels, oracle, items, authors = [], [], [], [], []
    for sample, p in sim.labelled_samples(RATE_SAMPLES, WINDOW_MS):
        domains.append(sample.impression.domain)
        labels.append([sample.labels[t] for t in sim.task_names])
        oracle.append([p[t] for t in sim.task_names])
        items.append(sample.impression.item_id)
        authors.append(sample.impression.author_id)
    return np.array(domains), np.array(labels), np.array(oracle), np.array(items), np.array(authors)


def test_same_seed_same_events_and_different_seed_different(default_config, population, sim):
    again = EventSimulator(default_config.simulator, default_config.schema, population)
    first = [encode(e) for e in sim.events(3000)]
    assert first == [encode(e) for e in again.events(3000)]
    assert first == [encode(e) for e in sim.events(3000)]  # a second run of the same object too
    other_config = dataclasses.replace(default_config.simulator, seed=default_config.simulator.seed + 1)
    other = EventSimulator(other_config, default_config.schema, population)
    other_events = [encode(e) for e in other.events(3000)]
    assert len(set(first) & set(other_events)) < 10


def test_impressions_carry_exactly_the_schema_features(sim, default_config):
    schema = default_config.schema
    impressions = [e for e in sim.events(500) if isinstance(e, Impression)]
    assert len(impressions) == 500
    assert len({i.impression_id for i in impressions}) == 500
    for imp in impressions:
        assert set(imp.sparse) == {f.name for f in schema.sparse}
        assert set(imp.dense) == {f.name for f in schema.dense}
        assert imp.domain in schema.domains
        assert imp.labels is None
        assert all(np.isfinite(v) and v >= 0 for v in imp.dense.values())
        assert isinstance(imp.sparse["tag"], list) and 1 <= len(imp.sparse["tag"]) <= 3


def test_actions_follow_their_impression_with_realistic_delays(sim):
    events = list(sim.events(20_000))
    impression_time: dict[str, int] = {}
    delays = []
    running_max = 0
    for e in events:
        if isinstance(e, Impression):
            impression_time[e.impression_id] = e.event_time_ms
        else:
            assert isinstance(e, Action)
            assert e.impression_id in impression_time, "an action is delivered before its impression"
            assert e.action in sim.task_names
            delays.append(e.event_time_ms - impression_time[e.impression_id])
        # Roughly in event-time order: only the delivery jitter (mean 200 ms) reorders events.
        assert e.event_time_ms >= running_max - 10_000
        running_max = max(running_max, e.event_time_ms)
    delays = np.array(delays)
    assert (delays > 0).all()
    assert 1_000 < np.median(delays) < 60_000  # seconds to a minute
    late = (delays > 600_000).mean()
    assert 0.003 < late < 0.03  # a few beyond any reasonable join window
    # Every action happens at most once per (impression, task).
    pairs = [(e.impression_id, e.action) for e in events if isinstance(e, Action)]
    assert len(pairs) == len(set(pairs))


def test_labelled_samples_equal_an_event_time_join_of_the_events(sim):
    n = 6000
    impressions: dict[str, Impression] = {}
    actions: dict[str, list[Action]] = defaultdict(list)
    for e in sim.events(n):
        if isinstance(e, Impression):
            impressions[e.impression_id] = e
        else:
            actions[e.impression_id].append(e)
    for window_ms in (WINDOW_MS, 20_000):
        seen = 0
        for sample, oracle in sim.labelled_samples(n, window_ms):
            imp = impressions[sample.sample_id]
            assert encode(sample.impression) == encode(imp)
            joined = {a.action for a in actions[imp.impression_id] if a.event_time_ms - imp.event_time_ms <= window_ms}
            assert sample.labels == {t: int(t in joined) for t in sim.task_names}
            assert sample.join.window_ms == window_ms and sample.join.actions_joined == len(joined)
            assert set(oracle) == set(sim.task_names)
            seen += 1
        assert seen == n == len(impressions)


def test_label_rates_hit_targets_per_task_and_domain(sim, labelled):
    domains, labels, _, _, _ = labelled
    within = sim.probability_within_window(WINDOW_MS)
    targets = sim.target_rates()
    checked = 0
    for k, task in enumerate(sim.task_names):
        for domain, target in targets[task].items():
            mask = domains == domain
            expected = target * within[task]
            if expected * mask.sum() < 100:
                continue  # too few positives expected to test this cell at this sample size
            observed = labels[mask, k].mean()
            sigma = np.sqrt(expected * (1 - expected) / mask.sum())
            assert abs(observed - expected) < 4 * sigma + 0.1 * expected, (task, domain, observed, expected)
            checked += 1
        overall = labels[:, k].mean()
        traffic = np.array([(domains == d).mean() for d in targets[task]])
        expected = float(traffic @ np.array(list(targets[task].values()))) * within[task]
        sigma = np.sqrt(expected * (1 - expected) / len(domains))
        assert abs(overall - expected) < 4 * sigma + 0.05 * expected, (task, overall, expected)
    assert checked >= 12
    rate = {t: labels[:, k].mean() for k, t in enumerate(sim.task_names)}
    assert 0.006 < rate["follow"] < 0.015
    assert 0.025 < rate["like"] < 0.045
    assert rate["hate"] < rate["follow"]


def test_click_rates_per_domain_are_ordered_like_tab_stats(sim, labelled, population):
    domains, labels, _, _, _ = labelled
    names = list(population.domains.names)
    observed = [labels[domains == d, 0].mean() for d in names]
    assert list(np.argsort(observed)) == list(np.argsort(population.domains.click_rate))
    share = np.array([(domains == d).mean() for d in names])
    np.testing.assert_allclose(share, population.domains.traffic_share, atol=0.01)


def test_effective_view_mostly_follows_a_click_and_hate_conflicts_with_like(sim, labelled):
    _, labels, oracle, _, _ = labelled
    tasks = sim.task_names
    click, ev = labels[:, tasks.index("click")], labels[:, tasks.index("effective_view")]
    like, hate = labels[:, tasks.index("like")], labels[:, tasks.index("hate")]
    assert (click[ev == 1] == 1).mean() > 0.9
    assert not (like & hate).any()
    assert np.corrcoef(oracle[:, tasks.index("like")], oracle[:, tasks.index("hate")])[0, 1] < -0.05


def test_new_item_and_author_ids_keep_arriving(sim, labelled, population):
    _, _, _, items, authors = labelled
    real_items = set(population.videos.item_id.tolist())
    real_authors = set(population.videos.author_id.tolist())
    quarters = np.array_split(np.arange(len(items)), 4)
    first_seen_quarter = {}
    for q, rows in enumerate(quarters):
        for item in items[rows].tolist():
            first_seen_quarter.setdefault(item, q)
    new_by_quarter = [sum(1 for i, q in first_seen_quarter.items() if q == k and i not in real_items) for k in range(4)]
    assert all(count > 0 for count in new_by_quarter), new_by_quarter
    assert any(a not in real_authors for a in authors.tolist())


def test_oracle_probabilities_are_informative_but_not_perfect(sim, labelled):
    _, labels, oracle, _, _ = labelled
    assert ((oracle > 0) & (oracle < 1)).all()
    for k, task in enumerate(sim.task_names):
        score = auc(labels[:, k], oracle[:, k])
        assert 0.65 < score < 0.97, (task, score)
        # Calibrated: the mean oracle probability matches the observed rate.
        assert abs(oracle[:, k].mean() - labels[:, k].mean()) < 0.15 * labels[:, k].mean() + 0.001


def test_same_user_and_item_behave_differently_per_domain(sim):
    chunk = next(sim.simulate(4000))
    model = sim.model
    from stream.simulator.catalog import ItemCatalog
    from stream.simulator.generator import _factors

    catalog = ItemCatalog(sim.population.videos, model, sim.config, np.random.default_rng(0))
    item = catalog.sample(np.random.default_rng(1), 4000, sim.config.start_time_ms)
    per_domain = []
    for d in range(len(sim.schema.domains)):
        domain = np.full(4000, d)
        per_domain.append(model.base_logits(_factors(catalog, chunk.view.user_row, item, domain, chunk.view.time_ms)))
    # Same (user, item) pairs, different domain: the click ranking changes substantially.
    correlations = [
        np.corrcoef(per_domain[a][:, 0], per_domain[b][:, 0])[0, 1]
        for a in range(len(per_domain))
        for b in range(a + 1, len(per_domain))
    ]
    assert min(correlations) < 0.9
    assert max(correlations) > 0.3  # related, not independent


def test_write_oracle_matches_labelled_samples(sim, tmp_path):
    path = tmp_path / "oracle" / "run.jsonl"
    assert sim.write_oracle(path, 800, WINDOW_MS) == 800
    records = read_oracle_jsonl(path)
    assert len(records) == 800
    for sample, oracle in sim.labelled_samples(800, WINDOW_MS):
        record = records[sample.sample_id]
        assert record["labels"] == sample.labels
        assert record["oracle"] == pytest.approx(oracle)
        assert record["domain"] == sample.impression.domain


def test_prelabelled_impressions_carry_the_windowed_labels(sim):
    samples = [s for s, _ in sim.labelled_samples(300, WINDOW_MS)]
    prelabelled = list(sim.prelabelled_impressions(300, WINDOW_MS))
    assert [p.labels for p in prelabelled] == [s.labels for s in samples]
    assert [p.impression_id for p in prelabelled] == [s.sample_id for s in samples]


def test_subset_of_tasks_and_unknown_features_or_tasks(default_config, population):
    schema = default_config.schema
    two_tasks = dataclasses.replace(schema, tasks=[t for t in schema.tasks if t.name in ("like", "click")])
    sim = EventSimulator(default_config.simulator, two_tasks, population)
    assert {e.action for e in sim.events(2000) if isinstance(e, Action)} <= {"like", "click"}
    from pepnet.schema import SparseFeature, TaskSpec

    bad_feature = dataclasses.replace(schema, sparse=[*schema.sparse, SparseFeature("mood", "context")])
    with pytest.raises(ValueError, match="schema.sparse: the simulator cannot produce 'mood'"):
        EventSimulator(default_config.simulator, bad_feature, population)
    bad_task = dataclasses.replace(schema, tasks=[*schema.tasks, TaskSpec("purchase")])
    with pytest.raises(ValueError, match="schema.tasks"):
        EventSimulator(default_config.simulator, bad_task, population)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("impressions_per_second", 0),
        ("task_rates", {"like": 1.5}),
        ("task_rates", {"click": 0.1}),
        ("delay_median_s", {"like": -1.0}),
        ("late_fraction", 1.0),
        ("late_min_s", 0.0),
        ("new_author_fraction", 2.0),
        ("chunk_size", 0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}"):
        SimulatorConfig(**{field: value})


def test_every_simulated_event_passes_stream_validation(sim, default_config):
    from stream.events.validation import EventValidator

    validator = EventValidator(default_config.schema)
    events = list(sim.events(2000))
    prelabelled = list(sim.prelabelled_impressions(200, WINDOW_MS))
    for e in events + prelabelled:
        check = validator.impression if isinstance(e, Impression) else validator.action
        assert encode(check(encode(e), e.key())) == encode(e)


def test_domain_interactions_have_the_configured_strength_and_their_own_sign_per_domain(default_config, population):
    strength = 0.8
    config = dataclasses.replace(default_config.simulator, domain_interaction_strength=strength)
    model = EventSimulator(config, default_config.schema, population).model
    rng = np.random.default_rng(3)
    users = rng.integers(0, model.user_profile.shape[0], 20_000)
    templates = rng.integers(0, model.content_profile.shape[0], 20_000)
    product = model.user_profile[users] * model.content_profile[templates]  # observable profiles only
    click = [product @ model.interaction_weights[d, :, 0] for d in range(model.interaction_weights.shape[0])]
    assert 0.4 * strength < float(np.mean([c.std() for c in click])) < 1.6 * strength
    correlations = np.corrcoef(np.stack(click))[np.triu_indices(len(click), 1)]
    assert correlations.min() < 0.3 and correlations.max() > -0.99  # each tab matches profiles its own way


def test_interaction_strength_zero_switches_the_term_off_and_leaves_every_other_parameter(default_config, population):
    plain = EventSimulator(
        dataclasses.replace(default_config.simulator, domain_interaction_strength=0.0),
        default_config.schema,
        population,
    )
    model = EventSimulator(default_config.simulator, default_config.schema, population).model
    assert not plain.model.interaction_weights.any()
    for name in ("user_latent", "user_propensity", "latent_weights", "component_weights", "target_rates"):
        assert np.array_equal(getattr(plain.model, name), getattr(model, name)), name
