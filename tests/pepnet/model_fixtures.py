"""A small schema and random EmbeddedBatches for the dense-model tests."""

from __future__ import annotations

import torch

from pepnet.batch import EmbeddedBatch
from pepnet.model_input import InputShape
from pepnet.schema import DenseFeature, FeatureSchema, SparseFeature, TaskSpec

EMBEDDING_DIM = 4


def small_schema(num_tasks: int = 3) -> FeatureSchema:
    return FeatureSchema(
        tasks=[TaskSpec(f"task{i}") for i in range(num_tasks)],
        domains=["a", "b", "c"],
        sparse=[SparseFeature("tag", "item", max_values=3), SparseFeature("hour", "context")],
        dense=[DenseFeature("duration", "item", boundaries=[1.0, 10.0])],
    )


def random_batch(shape: InputShape, batch_size: int, seed: int = 0, requires_grad: bool = False) -> EmbeddedBatch:
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, shape.num_features, shape.embedding_dim, generator=g)
    return EmbeddedBatch(
        embeddings=embeddings.requires_grad_(requires_grad),
        domain=torch.randint(0, shape.num_domains, (batch_size,), generator=g),
        domain_stats=torch.randn(batch_size, shape.num_domain_stats, generator=g),
        dense=torch.randn(batch_size, shape.num_dense, generator=g),
    )
