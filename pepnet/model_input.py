"""The shapes of the dense model's input and the two input views every architecture uses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pepnet.batch import EmbeddedBatch
from pepnet.schema import ID_FEATURES, FeatureSchema


@dataclass(frozen=True)
class InputShape:
    """Sizes of an :class:`EmbeddedBatch`: F features of width ``embedding_dim``, D dense values,
    K domain statistics, and where the id features (user, item, author) sit among the F."""

    num_features: int
    embedding_dim: int
    num_dense: int
    num_tasks: int
    num_domains: int
    num_domain_stats: int
    id_feature_positions: tuple[int, ...]

    @staticmethod
    def from_schema(schema: FeatureSchema, embedding_dim: int) -> InputShape:
        slots = schema.slots()
        names = [s.name for s in slots]
        return InputShape(
            num_features=len(slots),
            embedding_dim=embedding_dim,
            num_dense=len(schema.dense),
            num_tasks=len(schema.tasks),
            num_domains=len(schema.domains),
            num_domain_stats=len(schema.tasks),  # one running positive rate per task
            id_feature_positions=tuple(names.index(n) for n, _ in ID_FEATURES),
        )


class SharedInput(nn.Module):
    """E: all pooled embeddings flattened, plus the normalised dense values when enabled."""

    def __init__(self, shape: InputShape, use_dense_values: bool) -> None:
        super().__init__()
        self.use_dense_values = use_dense_values
        self.out_dim = shape.num_features * shape.embedding_dim + (shape.num_dense if use_dense_values else 0)
        self.register_buffer("id_positions", torch.tensor(shape.id_feature_positions), persistent=False)
        self.prior_dim = len(shape.id_feature_positions) * shape.embedding_dim

    def forward(self, batch: EmbeddedBatch) -> torch.Tensor:
        """E ``[B, F*dim (+D)]``."""
        e = batch.embeddings.flatten(1)
        return torch.cat([e, batch.dense], dim=1) if self.use_dense_values else e

    def prior(self, batch: EmbeddedBatch) -> torch.Tensor:
        """E(user) ⊕ E(item) ⊕ E(author), ``[B, 3*dim]``: PPNet's personalised prior."""
        return batch.embeddings.index_select(1, self.id_positions).flatten(1)


class DomainSideInput(nn.Module):
    """E(df): a learned embedding of the domain id ⊕ the domain statistics of the batch.

    Domains are a small closed set from the schema, so their embedding lives in the dense model.
    """

    def __init__(self, shape: InputShape, domain_embedding_dim: int) -> None:
        super().__init__()
        self.domain_embedding = nn.Embedding(shape.num_domains, domain_embedding_dim)
        nn.init.normal_(self.domain_embedding.weight, std=0.1)
        self.out_dim = domain_embedding_dim + shape.num_domain_stats

    def forward(self, batch: EmbeddedBatch) -> torch.Tensor:
        """``[B, domain_embedding_dim + K]``."""
        return torch.cat([self.domain_embedding(batch.domain), batch.domain_stats], dim=1)
