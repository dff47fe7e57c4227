"""The hidden ground-truth label model of the simulator (never exposed as a feature).

For an impression of item i (author a) to user u in domain d at event time t, every task k has a logit

    logit[k] = b[d, k]                                   calibrated so the rates hit the targets
             + g[d, k] * rho[u, k]                       personalised prior (user propensity)
             + sum_j W[d, j, k] * z[u, j] * y[i, j]      latent user x item affinity, dims per domain
             + sum_c C[d, c, k] * x[c]                   item quality, author quality, freshness,
                                                         log duration, hour, popularity trend,
                                                         user x author affinity
             + sum_m V[d, m, k] * p[u, m] * q[i, m]      domain-specific feature interactions

``z`` (user) and ``y`` (item) are partly explained by observable features (user categorical
features; tags and author of the item) and partly id-specific residuals, so a model needs both
the features and the id embeddings. ``W`` and ``C`` differ per domain (different factors matter,
some are switched off), and per task (hate pulls against like, effective view prefers short
videos while follow prefers long ones from strong authors).

The last term is where the domains differ in *how features interact*, not only in how much each
matters: ``p`` is a user profile made only of observable user features (activity, account age,
follows, two anonymous categories), ``q`` a content profile made only of observable item features
(tags, upload type, duration class), both standardised. Which profile matches which content, and
with which sign, is partly shared by all tabs and partly the tab's own (``V[d]`` = shared part
+ the tab's part, ``INTERACTION_SHARED_SHARE`` of the variance shared): a segment of users that
engages with long imported videos in one feed may skip them in another, where it came for
something else. ``simulator.domain_interaction_strength`` is the std of the term in logits (0 =
off, which reproduces the stream without it exactly); 0.8 is of the order of the user x item
affinity (std ~1). A model that can rescale features per domain (EPNet's gate) has a
natural handle on this structure; one that only concatenates a domain embedding must learn a
three-way product.

Actions given the logits: click ~ Bernoulli(sigmoid(l_click)); every other action has
probability sigmoid(l_k) after a click and sigmoid(l_k + NO_CLICK_SHIFT[k]) without one; hate
never co-occurs with like. The oracle probability of a task is its exact marginal under this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from stream.simulator.config import KNOWN_TASKS, SimulatorConfig
from stream.simulator.population import DomainStats, FeatureValue, UserTable, VideoTable

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
# Domain-specific feature interactions: dims of the user and content profiles, the observable
# features that make them, the share of the weights' variance common to all domains, and the
# sign and size of the term per task (hate pulls against the others).
INTERACTION_DIM = 4
USER_PROFILE_FEATURES = (
    "user_active_degree",
    "register_days_range",
    "follow_user_num_range",
    "onehot_feat1",
    "onehot_feat2",
)
CONTENT_PROFILE_FEATURES = ("upload_type",)  # plus the tags and the duration class
DURATION_CLASS_BOUNDARIES_S = (15.0, 60.0, 300.0)
INTERACTION_SHARED_SHARE = 0.3
TASK_INTERACTION_PROFILE = np.array([1.0, 0.8, 1.0, 0.6, 1.0, -1.0])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def category_effects(rng: np.random.Generator, values: Sequence[FeatureValue], shape: tuple[int, ...], scale: float):
    """One N(0, scale) effect of ``shape`` per distinct value (drawn in sorted order), gathered per row."""
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    table = rng.normal(0.0, scale, size=(len(distinct), *shape))
    index = {v: j for j, v in enumerate(distinct)}
    return table[np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))]


def list_effects(rng: np.random.Generator, lists: Sequence[Sequence[int]], dim: int, scale: float) -> np.ndarray:
    """One N(0, scale) effect ``[dim]`` per distinct value (drawn in sorted order), averaged over each
    row's non-empty list of values (e.g. a video's tags); ``[len(lists), dim]``."""
    distinct = sorted({v for values in lists for v in values})
    table = rng.normal(0.0, scale, size=(len(distinct), dim))
    index = {v: j for j, v in enumerate(distinct)}
    row_of = np.repeat(np.arange(len(lists)), [len(values) for values in lists])
    value_of = np.fromiter((index[v] for values in lists for v in values), dtype=np.int64, count=len(row_of))
    sums = np.zeros((len(lists), dim))
    np.add.at(sums, row_of, table[value_of])
    return sums / np.bincount(row_of, minlength=len(lists))[:, None]


def standardised(x: np.ndarray) -> np.ndarray:
    """Columns of ``x`` shifted and scaled to mean 0 and standard deviation 1 (constant ones to 0)."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class ImpressionFactors:
    """Everything the hidden model looks at for n impressions (gathered by the generator)."""

    user: np.ndarray  # int64 [n] user row
    template: np.ndarray  # int64 [n] real video whose observable attributes the item carries
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

    def __init__(
        self,
        users: UserTable,
        videos: VideoTable,
        domains: DomainStats,
        config: SimulatorConfig,
        rng: np.random.Generator,
    ):
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
        # Drawn last, so that the parameters above do not depend on the interaction settings.
        self.user_profile = self._user_profile(users, rng)  # [U, M]
        self.content_profile = self._content_profile(videos, rng)  # [videos, M]
        self.interaction_weights = self._interaction_weights(num_domains, config.domain_interaction_strength, rng)

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
    def _user_profile(users: UserTable, rng: np.random.Generator) -> np.ndarray:
        """p: standardised sum of effects of observable user categories, ``[U, M]``."""
        profile = np.zeros((len(users), INTERACTION_DIM))
        for name in USER_PROFILE_FEATURES:
            profile += category_effects(rng, users.columns[name], (INTERACTION_DIM,), 1.0)
        return standardised(profile)

    @staticmethod
    def _content_profile(videos: VideoTable, rng: np.random.Generator) -> np.ndarray:
        """q: standardised sum of effects of a video's tags, upload type and duration class, ``[videos, M]``."""
        profile = list_effects(rng, videos.tags, INTERACTION_DIM, 1.0)
        for name in CONTENT_PROFILE_FEATURES:
            profile += category_effects(rng, videos.columns[name], (INTERACTION_DIM,), 1.0)
        duration_class = np.searchsorted(DURATION_CLASS_BOUNDARIES_S, videos.duration_s).tolist()
        profile += category_effects(rng, duration_class, (INTERACTION_DIM,), 1.0)
        return standardised(profile)

    @staticmethod
    def _interaction_weights(num_domains: int, strength: float, rng: np.random.Generator) -> np.ndarray:
        """V ``[D, M, T]``: per domain, a shared and an own part, scaled so that the term has std ``strength``."""
        shared = rng.normal(size=(1, INTERACTION_DIM))
        own = rng.normal(size=(num_domains, INTERACTION_DIM))
        mixed = np.sqrt(INTERACTION_SHARED_SHARE) * shared + np.sqrt(1.0 - INTERACTION_SHARED_SHARE) * own
        return strength / np.sqrt(INTERACTION_DIM) * mixed[:, :, None] * TASK_INTERACTION_PROFILE[None, None, :]

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
        interaction = np.einsum(
            "nm,nmk->nk",
            self.user_profile[f.user] * self.content_profile[f.template],
            self.interaction_weights[f.domain],
        )
        return affinity + linear + interaction + self.propensity_gain[f.domain] * self.user_propensity[f.user]

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
