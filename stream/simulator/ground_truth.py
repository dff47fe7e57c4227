"""The hidden ground-truth label model of the simulator (never exposed as a feature).

For an impression of item i (author a) to user u in domain d at event time t, every task k has a logit

    logit[k] = b[d, k]                                   calibrated so the rates hit the targets
             + g[d, k] * rho[u, k]                       personalised prior (user propensity)
             + sum_j W[d, j, k] * z[u, j] * y[i, j]      latent user x item affinity, dims per domain
             + sum_c C[d, c, k] * x[c]                   item quality, author quality, freshness,
                                                         log duration, hour, popularity trend,
                                                         user x author affinity

``z`` (user) and ``y`` (item) are partly explained by observable features (user categorical
features; tags and author of the item) and partly id-specific residuals, so a model needs both
the features and the id embeddings. ``W`` and ``C`` differ per domain (different factors matter,
some are switched off), and per task (hate pulls against like, effective view prefers short
videos while follow prefers long ones from strong authors).

Actions given the logits: click ~ Bernoulli(sigmoid(l_click)); every other action has
probability sigmoid(l_k) after a click and sigmoid(l_k + NO_CLICK_SHIFT[k]) without one; hate
never co-occurs with like. The oracle probability of a task is its exact marginal under this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from stream.simulator.config import KNOWN_TASKS, SimulatorConfig
from stream.simulator.population import DomainStats, FeatureValue, UserTable

LATENT_DIM = 8
CLICK, EFFECTIVE_VIEW, LIKE, FOLLOW, FORWARD, HATE = range(len(KNOWN_TASKS))
# Logit shift of an action on an impression that was not clicked (rare but possible).
NO_CLICK_SHIFT = np.array([0.0, -4.0, -3.5, -3.5, -3.5, -3.5])

# User features that shape the user's latent taste z (the rest of z is id-specific).
USER_LATENT_FEATURES = (
    "user_active_degree",
    "onehot_feat1",
    "onehot_feat2",
    "follow_user_num_range",
    "fans_user_num_range",
    "register_days_range",
)
# User features that shift the user's per-task propensity rho.
USER_PROPENSITY_FEATURES = (
    "user_active_degree",
    "is_live_streamer",
    "is_video_author",
    "fans_user_num_range",
    "onehot_feat0",
)
COMPONENTS = (
    "quality",
    "author_quality",
    "freshness",
    "log_duration",
    "hour",
    "trend",
    "user_author_affinity",
)
# Sign and size of each component per task (columns in KNOWN_TASKS order); domains rescale them.
BASE_COEFFICIENTS = np.array(
    [
        #  click    ev   like follow forward hate
        [0.6, 0.4, 0.6, 0.3, 0.5, -0.8],  # quality
        [0.3, 0.1, 0.3, 1.0, 0.3, -0.2],  # author_quality
        [0.6, 0.0, 0.3, 0.1, 0.4, 0.0],  # freshness
        [0.1, -0.7, 0.0, 0.3, 0.0, 0.2],  # log_duration
        [0.2, 0.1, 0.1, 0.0, 0.2, 0.0],  # hour
        [0.5, 0.2, 0.4, 0.1, 0.3, -0.1],  # trend
        [0.1, 0.1, 0.2, 0.8, 0.1, -0.2],  # user_author_affinity
    ]
)
# How strongly each task follows each latent dim; forward follows its own dims, hate is anti-like.
TASK_LATENT_PROFILE = np.array(
    [
        [1.0] * 8,  # click
        [1.0] * 6 + [0.2] * 2,  # effective_view
        [1.0] * 8,  # like
        [0.5] * 8,  # follow
        [0.3] * 4 + [1.6] * 4,  # forward
        [-1.0] * 8,  # hate
    ]
)
# Size of the user propensity per task (std of rho) and of its share common to all tasks.
PROPENSITY_SCALE = np.array([0.6, 0.5, 0.7, 0.8, 0.8, 0.6])
# How much of each task's propensity is the user's general engagement; haters engage less.
ENGAGEMENT_LOADING = np.array([0.45, 0.45, 0.45, 0.45, 0.45, -0.45])
# Chance that a component is switched off in a domain (which factors matter differs per domain).
COMPONENT_DROP_PROBABILITY = 0.25
LATENT_DIM_DROP_PROBABILITY = 0.3


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def category_effects(rng: np.random.Generator, values: Sequence[FeatureValue], shape: tuple[int, ...], scale: float):
    """One N(0, scale) effect of ``shape`` per distinct value (drawn in sorted order), gathered per row."""
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    table = rng.normal(0.0, scale, size=(len(distinct), *shape))
    index = {v: j for j, v in enumerate(distinct)}
    return table[np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))]


@dataclass(frozen=True)
class ImpressionFactors:
    """Everything the hidden model looks at for n impressions (gathered by the generator)."""

    user: np.ndarray  # int64 [n] user row
    domain: np.ndarray  # int64 [n]
    item_latent: np.ndarray  # float64 [n, L]
    author_latent: np.ndarray  # float64 [n, L]
    components: np.ndarray  # float64 [n, C] in COMPONENTS order

    @staticmethod
    def concatenate(parts: Sequence[ImpressionFactors]) -> ImpressionFactors:
        return ImpressionFactors(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(ImpressionFactors))
        )


class GroundTruthModel:
    """Hidden per-user, per-domain and per-task parameters; turns impression factors into labels."""

    def __init__(self, users: UserTable, domains: DomainStats, config: SimulatorConfig, rng: np.random.Generator):
        num_domains, num_tasks = len(domains.names), len(KNOWN_TASKS)
        self.user_latent = self._user_latent(users, rng)
        self.user_propensity = self._user_propensity(users, rng)
        # Per-domain latent weights: some dims do not matter in some domains.
        dim_on = rng.random((num_domains, LATENT_DIM)) >= LATENT_DIM_DROP_PROBABILITY
        dim_scale = np.abs(rng.normal(1.0, 0.4, size=(num_domains, LATENT_DIM))) * dim_on
        # z and y have variance ~0.8 and ~0.55 per dim; 1/sqrt(L * var) keeps the affinity std near 1.
        norm = 1.0 / np.sqrt(LATENT_DIM * 0.8 * 0.55)
        self.latent_weights = dim_scale[:, :, None] * TASK_LATENT_PROFILE.T[None, :, :] * norm  # [D, L, T]
        comp_on = rng.random((num_domains, len(COMPONENTS), num_tasks)) >= COMPONENT_DROP_PROBABILITY
        modulation = 1.0 + 0.5 * rng.normal(size=(num_domains, len(COMPONENTS), num_tasks))
        self.component_weights = BASE_COEFFICIENTS[None] * modulation * comp_on  # [D, C, T]
        self.propensity_gain = 1.0 + 0.3 * rng.normal(size=(num_domains, num_tasks))
        self.target_rates = self._target_rates(domains, config, rng)  # [D, T]
        self.intercepts = np.zeros((num_domains, num_tasks))

    # --- hidden parameters -------------------------------------------------------------------

    @staticmethod
    def _user_latent(users: UserTable, rng: np.random.Generator) -> np.ndarray:
        latent = rng.normal(0.0, 0.3, size=(len(users), LATENT_DIM))
        for name in USER_LATENT_FEATURES:
            latent += category_effects(rng, users.columns[name], (LATENT_DIM,), 0.35)
        return latent

    @staticmethod
    def _user_propensity(users: UserTable, rng: np.random.Generator) -> np.ndarray:
        num_tasks = len(KNOWN_TASKS)
        engagement = rng.normal(0.0, 1.0, size=(len(users), 1))
        own = rng.normal(0.0, 1.0, size=(len(users), num_tasks))
        rho = (ENGAGEMENT_LOADING * engagement + 0.55 * own) * PROPENSITY_SCALE
        for name in USER_PROPENSITY_FEATURES:
            rho += category_effects(rng, users.columns[name], (num_tasks,), 0.35)
        return rho

    @staticmethod
    def _target_rates(domains: DomainStats, config: SimulatorConfig, rng: np.random.Generator) -> np.ndarray:
        """Marginal rate of each task per domain: click from tab_stats, the others spread around the config."""
        share = domains.traffic_share
        targets = np.zeros((len(domains.names), len(KNOWN_TASKS)))
        targets[:, CLICK] = domains.click_rate
        for k, task in enumerate(KNOWN_TASKS[1:], start=1):
            rate = config.task_rates.get(task, SimulatorConfig().task_rates[task])
            spread = np.exp(config.domain_rate_spread * rng.normal(size=len(share)))
            if k == EFFECTIVE_VIEW:
                targets[:, k] = np.minimum(domains.click_rate * rate * spread, 0.95 * domains.click_rate + 0.02)
            else:
                targets[:, k] = rate * spread / float(share @ spread)
        return targets

    def draw_author_effects(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent [n, L], quality [n] and fans count [n] of n authors."""
        latent = rng.normal(0.0, 0.4, size=(n, LATENT_DIM))
        quality = rng.normal(0.0, 0.5, size=n)
        log_fans = 2.6 + 1.6 * quality + rng.normal(0.0, 0.5, size=n)
        fans = np.round(10.0 ** np.clip(log_fans, 0.0, 7.5))
        return latent, quality, fans

    def draw_item_effects(
        self,
        rng: np.random.Generator,
        tag_latent: np.ndarray,
        author_latent: np.ndarray,
        author_quality: np.ndarray,
        type_quality: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Latent y [n, L] and quality [n] of n items from their tags' and author's latents."""
        n = tag_latent.shape[0]
        latent = tag_latent + author_latent + rng.normal(0.0, 0.35, size=(n, LATENT_DIM))
        quality = type_quality + 0.5 * author_quality + rng.normal(0.0, 0.3, size=n)
        return latent, quality

    # --- labels ----------------------------------------------------------------------------------

    def base_logits(self, f: ImpressionFactors) -> np.ndarray:
        """Logits [n, T] without the calibrated intercepts."""
        user_latent = self.user_latent[f.user]
        affinity = np.einsum("nj,njk->nk", user_latent * f.item_latent, self.latent_weights[f.domain])
        components = f.components.copy()
        components[:, COMPONENTS.index("user_author_affinity")] = (user_latent * f.author_latent).sum(axis=1)
        linear = np.einsum("nc,nck->nk", components, self.component_weights[f.domain])
        return affinity + linear + self.propensity_gain[f.domain] * self.user_propensity[f.user]

    def logits(self, f: ImpressionFactors) -> np.ndarray:
        return self.base_logits(f) + self.intercepts[f.domain]

    @staticmethod
    def marginals(logits: np.ndarray) -> np.ndarray:
        """Exact probability [n, T] of each action (the oracle), given the logits."""
        click = sigmoid(logits[:, CLICK])
        after = sigmoid(logits)
        without = sigmoid(logits + NO_CLICK_SHIFT)
        p = click[:, None] * after + (1.0 - click[:, None]) * without
        p[:, CLICK] = click
        p[:, HATE] = (
            click * (1.0 - after[:, LIKE]) * after[:, HATE]
            + (1.0 - click) * (1.0 - without[:, LIKE]) * without[:, HATE]
        )
        return p

    @staticmethod
    def draw_actions(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
        """Bool [n, T]: which actions happen (hate never together with like)."""
        u = rng.random(logits.shape)
        clicked = u[:, CLICK] < sigmoid(logits[:, CLICK])
        p = sigmoid(logits + np.where(clicked[:, None], 0.0, NO_CLICK_SHIFT[None, :]))
        actions = u < p
        actions[:, CLICK] = clicked
        actions[:, HATE] &= ~actions[:, LIKE]
        return actions

    def fit_intercepts(self, f: ImpressionFactors, iterations: int = 36) -> None:
        """Set the intercepts so that the mean marginal per (domain, task) on ``f`` hits the target.

        Tasks are fitted in order (click first, like before hate) because the marginals depend on them.
        """
        base = self.base_logits(f)
        num_domains = self.intercepts.shape[0]
        counts = np.bincount(f.domain, minlength=num_domains).astype(np.float64)
        if (counts == 0).any():
            raise ValueError("fit_intercepts needs impressions of every domain")
        click = np.ones(base.shape[0])
        not_like = np.ones((base.shape[0], 2))  # P(no like | click), P(no like | no click)
        for k in range(len(KNOWN_TASKS)):
            low, high = np.full(num_domains, -20.0), np.full(num_domains, 20.0)
            for _ in range(iterations):
                middle = 0.5 * (low + high)
                logit = base[:, k] + middle[f.domain]
                if k == CLICK:
                    p = sigmoid(logit)
                else:
                    after, without = sigmoid(logit), sigmoid(logit + NO_CLICK_SHIFT[k])
                    if k == HATE:
                        after, without = after * not_like[:, 0], without * not_like[:, 1]
                    p = click * after + (1.0 - click) * without
                too_high = np.bincount(f.domain, p, minlength=num_domains) / counts > self.target_rates[:, k]
                high = np.where(too_high, middle, high)
                low = np.where(too_high, low, middle)
            self.intercepts[:, k] = 0.5 * (low + high)
            logit = base[:, k] + self.intercepts[f.domain, k]
            if k == CLICK:
                click = sigmoid(logit)
            elif k == LIKE:
                not_like = 1.0 - np.stack([sigmoid(logit), sigmoid(logit + NO_CLICK_SHIFT[k])], axis=1)
