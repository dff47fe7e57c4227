"""The growing item catalog of one simulation run: real videos first, then new items as they arrive.

A new item copies the attributes (type, tags, duration, music) of a random real video, its
*template*, gets a fresh id and hidden effects, and comes either from the template's author or,
with probability ``new_author_fraction``, from a brand-new author. Exposure follows popularity:
``base_popularity / (1 + age_hours / popularity_decay_hours)``, so fresh items take traffic from
old ones and new ids never stop appearing.
"""

from __future__ import annotations

import numpy as np

from stream.simulator.config import SimulatorConfig
from stream.simulator.ground_truth import LATENT_DIM, GroundTruthModel, category_effects, list_effects
from stream.simulator.population import VideoTable

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR


class ItemCatalog:
    """Items and authors (arrays indexed by item row / author row) with their hidden effects."""

    def __init__(self, videos: VideoTable, model: GroundTruthModel, config: SimulatorConfig, rng: np.random.Generator):
        self._model = model
        self._decay_hours = config.popularity_decay_hours
        self._new_author_fraction = config.new_author_fraction
        n = len(videos)
        # Authors of the real videos.
        self.author_id, author_row = np.unique(videos.author_id, return_inverse=True)
        self.author_latent, self.author_quality, self.author_fans = model.draw_author_effects(rng, len(self.author_id))
        # Per real video: what a new item copying it inherits.
        self._template_tag_latent = list_effects(rng, videos.tags, LATENT_DIM, 0.6)  # mean of the tags' latents
        self._template_type_quality = category_effects(rng, videos.columns["upload_type"], (), 0.4) + category_effects(
            rng, videos.columns["video_type"], (), 0.4
        )
        self._template_duration = videos.duration_s
        # Item arrays.
        self.item_id = videos.item_id.copy()
        self.template = np.arange(n, dtype=np.int64)
        self.author_row = author_row.astype(np.int64)
        self.upload_time_ms = (
            config.start_time_ms - videos.upload_day_offset * MS_PER_DAY - rng.integers(0, MS_PER_DAY, size=n)
        ).astype(np.int64)
        self.base_popularity = rng.lognormal(0.0, 1.0, size=n)
        self.trend_phase = rng.uniform(0.0, 2 * np.pi, size=n)
        self.trend_period_hours = rng.uniform(1.0, 6.0, size=n)
        self.latent, self.quality = model.draw_item_effects(
            rng,
            self._template_tag_latent,
            self.author_latent[self.author_row],
            self.author_quality[self.author_row],
            self._template_type_quality,
        )
        self._next_item_id = int(self.item_id.max()) + 1
        self._next_author_id = int(self.author_id.max()) + 1

    def __len__(self) -> int:
        return int(self.item_id.shape[0])

    @property
    def duration_s(self) -> np.ndarray:
        return self._template_duration[self.template]

    def freshness(self, rows: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
        """1 / (1 + age / decay) in (0, 1] of items ``rows`` at ``time_ms`` (event time)."""
        age_hours = np.maximum(time_ms - self.upload_time_ms[rows], 0) / MS_PER_HOUR
        return 1.0 / (1.0 + age_hours / self._decay_hours)

    def trend(self, rows: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
        """Popularity wave in [-1, 1] of items ``rows`` at ``time_ms``."""
        hours = time_ms / MS_PER_HOUR
        return np.sin(2 * np.pi * hours / self.trend_period_hours[rows] + self.trend_phase[rows])

    def sample(self, rng: np.random.Generator, n: int, time_ms: int) -> np.ndarray:
        """Rows of n items exposed around ``time_ms``, drawn by current popularity."""
        age_hours = np.maximum(time_ms - self.upload_time_ms, 0) / MS_PER_HOUR
        weights = np.cumsum(self.base_popularity / (1.0 + age_hours / self._decay_hours))
        rows = np.searchsorted(weights, rng.random(n) * weights[-1], side="right")
        return np.minimum(rows, len(self) - 1)

    def add_items(self, rng: np.random.Generator, count: int, time_ms: int) -> np.ndarray:
        """Add ``count`` new items uploaded at ``time_ms``; returns their rows."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        start = len(self)
        template = rng.integers(0, len(self._template_duration), size=count)
        author_row = self.author_row[template].copy()
        new_author = rng.random(count) < self._new_author_fraction
        num_new_authors = int(new_author.sum())
        if num_new_authors:
            latent, quality, fans = self._model.draw_author_effects(rng, num_new_authors)
            author_row[new_author] = len(self.author_id) + np.arange(num_new_authors)
            new_ids = self._next_author_id + np.arange(num_new_authors, dtype=np.int64)
            self._next_author_id += num_new_authors
            self.author_id = np.concatenate([self.author_id, new_ids])
            self.author_latent = np.concatenate([self.author_latent, latent])
            self.author_quality = np.concatenate([self.author_quality, quality])
            self.author_fans = np.concatenate([self.author_fans, fans])
        latent, quality = self._model.draw_item_effects(
            rng,
            self._template_tag_latent[template],
            self.author_latent[author_row],
            self.author_quality[author_row],
            self._template_type_quality[template],
        )
        self.item_id = np.concatenate([self.item_id, self._next_item_id + np.arange(count, dtype=np.int64)])
        self._next_item_id += count
        self.template = np.concatenate([self.template, template])
        self.author_row = np.concatenate([self.author_row, author_row])
        self.upload_time_ms = np.concatenate([self.upload_time_ms, np.full(count, time_ms, dtype=np.int64)])
        # New uploads start with a popularity drawn like the others, slightly boosted (recommended fresh).
        self.base_popularity = np.concatenate([self.base_popularity, rng.lognormal(0.3, 1.0, size=count)])
        self.trend_phase = np.concatenate([self.trend_phase, rng.uniform(0.0, 2 * np.pi, size=count)])
        self.trend_period_hours = np.concatenate([self.trend_period_hours, rng.uniform(1.0, 6.0, size=count)])
        self.latent = np.concatenate([self.latent, latent])
        self.quality = np.concatenate([self.quality, quality])
        return np.arange(start, len(self), dtype=np.int64)
