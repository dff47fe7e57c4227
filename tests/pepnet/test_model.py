"""PEPNet, its ablations and the baselines: gate ranges, gradient paths, shapes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pepnet.batch import EmbeddedBatch
from pepnet.config import ARCHITECTURES, ModelConfig
from pepnet.gate_nu import GateNU
from pepnet.model import PEPNet, build_model
from pepnet.model_input import InputShape
from tests.pepnet.model_fixtures import EMBEDDING_DIM, random_batch, small_schema

CONFIG = ModelConfig(tower_hidden=[16, 8], gate_hidden=8, bottom_hidden=[16], expert_hidden=[16], mmoe_experts=3)


def shape(num_tasks: int = 3) -> InputShape:
    return InputShape.from_schema(small_schema(num_tasks), EMBEDDING_DIM)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0])
def test_gate_nu_outputs_lie_strictly_between_zero_and_gamma(gamma):
    torch.manual_seed(0)
    gate = GateNU(10, 8, 5, gamma)
    x = torch.randn(1000, 10) * 3
    out = gate(x).detach()
    assert out.shape == (1000, 5)
    assert float(out.min()) > 0.0 and float(out.max()) < gamma
    assert float(out.max() - out.min()) > 0.01  # a real function of x, not a constant


def test_pepnet_gates_lie_between_zero_and_gamma():
    model = PEPNet(shape(), dataclasses.replace(CONFIG, gamma=2.0))
    batch = random_batch(shape(), 64)
    e = model.shared(batch)
    gate = model.epnet.gate(model.domain_side(batch), e)
    assert gate.shape == e.shape
    gates = model.ppnet(model.shared.prior(batch), model.tower_input(batch))
    for g in [gate.detach(), *(g.detach() for g in gates)]:
        assert float(g.min()) > 0.0 and float(g.max()) < 2.0
    assert [g.shape for g in gates] == [(3, 64, w) for w in model.towers.layer_input_widths]


def test_epnet_gate_passes_no_gradient_to_the_embeddings():
    model = PEPNet(shape(), CONFIG)
    batch = random_batch(shape(), 16, requires_grad=True)
    gate = model.epnet.gate(model.domain_side(batch), model.shared(batch))
    gate.sum().backward()
    assert batch.embeddings.grad is None or float(batch.embeddings.grad.abs().sum()) == 0.0
    assert float(model.epnet.gate_nu.hidden.weight.grad.abs().sum()) > 0.0  # the gate itself learns


def test_ppnet_gates_reach_only_the_id_embeddings_and_never_epnet():
    s = shape()
    model = PEPNet(s, CONFIG)
    batch = random_batch(s, 16, requires_grad=True)
    gates = model.ppnet(model.shared.prior(batch), model.tower_input(batch))
    sum(g.sum() for g in gates).backward()
    grad = batch.embeddings.grad.abs().sum(dim=(0, 2))  # per feature
    ids = list(s.id_feature_positions)
    others = [f for f in range(s.num_features) if f not in ids]
    assert all(float(grad[f]) > 0.0 for f in ids)  # the paper's personalised prior is trained by the gate
    assert all(float(grad[f]) == 0.0 for f in others)  # stopgrad(O_ep): nothing else
    for p in model.epnet.parameters():
        assert p.grad is None or float(p.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_embedding_gets_a_gradient_through_the_towers(architecture):
    s = shape()
    model = build_model(dataclasses.replace(CONFIG, architecture=architecture), s)
    batch = random_batch(s, 32, requires_grad=True)
    model(batch).sum().backward()
    per_feature = batch.embeddings.grad.abs().sum(dim=(0, 2))
    assert bool((per_feature > 0).all()), per_feature
    assert all(p.grad is not None for p in model.parameters())


def test_pepnet_embeddings_get_a_gradient_with_every_gate_input_detached():
    """With the id features' gate path cut too, the towers alone still train every embedding."""
    s = shape()
    model = PEPNet(s, CONFIG)
    batch = random_batch(s, 32, requires_grad=True)
    tower_input = model.tower_input(batch)
    gates = model.ppnet(model.shared.prior(batch).detach(), tower_input)
    model.towers(tower_input, gates).sum().backward()
    assert bool((batch.embeddings.grad.abs().sum(dim=(0, 2)) > 0).all())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("num_tasks", [1, 4])
@pytest.mark.parametrize("batch_size", [1, 5, 33])
def test_logits_have_one_column_per_task_for_any_batch_size(architecture, num_tasks, batch_size):
    s = shape(num_tasks)
    model = build_model(dataclasses.replace(CONFIG, architecture=architecture), s)
    out = model(random_batch(s, batch_size))
    assert out.shape == (batch_size, num_tasks)
    assert bool(torch.isfinite(out).all())


def test_dense_values_are_optional():
    s = shape()
    with_values = PEPNet(s, CONFIG)
    without = PEPNet(s, dataclasses.replace(CONFIG, use_dense_values=False))
    assert with_values.shared.out_dim == without.shared.out_dim + s.num_dense
    assert without(random_batch(s, 4)).shape == (4, 3)


def test_the_domain_changes_pepnet_predictions():
    s = shape()
    model = PEPNet(s, CONFIG)
    batch = random_batch(s, 8)
    other = dataclasses.replace(batch, domain=(batch.domain + 1) % s.num_domains)
    assert not torch.allclose(model(batch), model(other))


def test_towers_are_independent_per_task():
    s = shape()
    model = build_model(dataclasses.replace(CONFIG, architecture="epnet_only"), s)
    batch = random_batch(s, 8)
    model(batch)[:, 0].sum().backward()
    assert float(model.towers.weights[-1].grad[1:].abs().sum()) == 0.0
    assert float(model.towers.weights[-1].grad[0].abs().sum()) > 0.0


def unseen_ids_batch(s: InputShape) -> EmbeddedBatch:
    """One sample per domain whose embeddings are all zero (only new ids, no side features), with
    the same domain statistics everywhere: only the domain id tells the samples apart."""
    domains = s.num_domains
    return EmbeddedBatch(
        embeddings=torch.zeros(domains, s.num_features, s.embedding_dim),
        domain=torch.arange(domains),
        domain_stats=torch.zeros(domains, s.num_domain_stats),
        dense=torch.zeros(domains, s.num_dense),
    )


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_fresh_model_predicts_differently_per_domain_for_unseen_ids(architecture):
    s = shape()
    model = build_model(dataclasses.replace(CONFIG, architecture=architecture, domain_side_to_towers=True), s)
    logits = model(unseen_ids_batch(s)).detach()
    assert all(not torch.allclose(logits[0], logits[d]) for d in range(1, s.num_domains)), logits


def test_without_the_domain_side_in_the_towers_pepnet_is_blind_to_the_domain_of_unseen_ids():
    s = shape()
    model = build_model(dataclasses.replace(CONFIG, domain_side_to_towers=False), s)
    logits = model(unseen_ids_batch(s)).detach()
    assert torch.equal(logits, logits[:1].expand_as(logits))  # E = 0: the EPNet gate multiplies nothing
