"""The policy against the simulator (training/ml/policy_sim.py): simulated demonstrations obey
the content policy, and the whole training entry point runs on a small world, gives slates
that break no hard rule, and round-trips through a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml import policy_sim as PS
from training.ml import policy_training as PT
from training.ml.policy import (
    RecommenderPolicy,
    ScorerShape,
    ValueCritic,
    load_policy,
    save_policy,
)
from training.ml.reward_model import RewardModel, RewardModelConfig
from training.ml.simulator import SimConfig, Simulator


@pytest.fixture(scope="module")
def world():
    sim = Simulator(SimConfig(n_items=150, n_users=40), seed=2)
    compiled = PS.sim_content_policy(sim)
    adapter = PS.SimAdapter(sim, compiled)
    return sim, compiled, adapter


def test_simulated_demonstrations_obey_the_hard_rules_and_reject_with_reasons(world):
    sim, compiled, adapter = world
    steps, states = PS.simulate_demonstrations(sim, adapter, 6, np.random.default_rng(0))
    assert len(steps) == len(states) >= 6
    for state, chosen, rejected in zip(states, steps.chosen, steps.rejected, strict=True):
        slate = chosen[chosen >= 0]
        assert len(slate) == sim.config.slate_size
        assert compiled.violations(PS.engine_context(sim, state), slate) == []
        assert not np.isin(rejected[rejected >= 0], slate).any()
    reasons = steps.reasons[steps.reasons >= 0]
    assert set(reasons.tolist()) <= set(range(len(PT.REJECT_REASONS)))
    assert (steps.weights > 0).all()
    assert (steps.weights <= 1).all()


def test_train_policy_end_to_end_serves_rule_abiding_slates_and_round_trips(world, tmp_path):
    sim, compiled, adapter = world
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    steps, _ = PS.simulate_demonstrations(sim, adapter, 8, rng)
    logged, states, pscore = PS.simulate_logged(sim, adapter, 300, rng)
    engine = [PS.engine_context(sim, s) for s in states]
    shape = ScorerShape.from_schema(adapter.schema)

    def input_builder(contexts, engine_contexts):
        return PT.policy_inputs(
            compiled, adapter.rules, contexts, engine_contexts, adapter.n_segments
        )

    config = PT.ImprovementConfig(offline_steps=30)
    result = PT.train_policy(
        shape=shape, items=adapter.items, rules=adapter.rules, k=sim.config.slate_size,
        demonstrations=steps, logged=logged, logged_engine=engine,
        input_builder=input_builder, bc_config=PT.BCConfig(epochs=3), config=config,
        dual_steps=3,
    )  # fmt: skip
    policy = result.policy
    assert policy.cloned is not None
    assert policy.critic is not None
    assert len(result.penalties) == 3
    assert policy.multiplier >= 0

    batch = adapter.batch(states[:20])
    inputs = PT.PolicyInputs(batch.tensors, batch.allowed, batch.penalties, batch.engine)
    served = PT.serve_slates(
        policy, PT.ExplorationSettings(stage=2, share=0.5), inputs, adapter.items,
        sim.config.slate_size, adapter.rules, budget_left=10, rng=rng,
    )  # fmt: skip
    assert PT.hard_violation_rate(compiled, batch.engine, served.items) == 0.0
    assert (served.propensity > 0).all()

    # Off-policy evaluation inputs: the target policy's probabilities of logged slates.
    logged_inputs = input_builder(logged.contexts, engine)
    target = PT.target_pscores(
        policy, logged_inputs, adapter.items, sim.config.slate_size, adapter.rules,
        logged.slates,
    )  # fmt: skip
    assert target.shape == pscore.shape
    assert ((target >= 0) & (target <= 1)).all()

    digest = save_policy(tmp_path / "policy.pt", policy, adapter.schema, hidden=32)
    loaded = load_policy(tmp_path / "policy.pt", sha256=digest, schema=adapter.schema)
    again = PT.serve_slates(
        loaded, PT.ExplorationSettings(stage=0), inputs, adapter.items, sim.config.slate_size,
        adapter.rules, budget_left=0, rng=rng,
    )  # fmt: skip
    assert (again.items == served.greedy).all()


def test_the_reward_model_teaches_the_critic_and_gauges_exploration(world):
    sim, compiled, adapter = world
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    config = RewardModelConfig(members=3, hidden_sizes=(8,))
    model = RewardModel(config, adapter.schema.dim)
    scorer = PT.RewardScorer(model, adapter.schema, adapter.catalog, compiled)
    _, states, _ = PS.simulate_logged(sim, adapter, 40, rng)
    batch = adapter.batch(states)
    inputs = PT.PolicyInputs(batch.tensors, batch.allowed, batch.penalties, batch.engine)
    shape = ScorerShape.from_schema(adapter.schema)
    policy = RecommenderPolicy(shape=shape, critic=ValueCritic(shape, 8))
    utilities = scorer(batch.contexts, np.tile(np.arange(5), (40, 1)), batch.engine)
    assert utilities.shape == (3, 40)

    pairs = PT.reward_pairs(
        scorer, policy, batch.contexts, inputs, adapter.items, sim.config.slate_size,
        adapter.rules, rng,
    )  # fmt: skip
    assert ((pairs.p_a >= 0) & (pairs.p_a <= 1)).all()
    assert ((pairs.certainty >= 0) & (pairs.certainty <= 1)).all()
    trainer = PT.CriticTrainer(policy.critic, adapter.items, shape.n_segments, PT.CriticConfig())
    before = [p.detach().clone() for p in policy.critic.parameters()]
    loss = trainer.distill_step(pairs, weight=1.0)
    assert np.isfinite(loss)
    changed = [
        not torch.equal(a, b) for a, b in zip(before, policy.critic.parameters(), strict=True)
    ]
    assert any(changed)

    spread = PT.item_uncertainty(
        scorer, batch.contexts, np.zeros(40, dtype=np.int64), np.tile([1, 2, 3], (40, 1))
    )
    assert spread.shape == (40, 3)
    assert ((spread >= 0) & (spread <= 0.5)).all()


def test_held_out_logged_rows_are_disjoint_from_the_fitted_ones_and_small_logs_keep_all():
    sim = Simulator(SimConfig(n_items=150, n_users=40), seed=2)
    adapter = PS.SimAdapter(sim, PS.sim_content_policy(sim))
    logged, _, _ = PS.simulate_logged(sim, adapter, 600, np.random.default_rng(4))
    fit, held_out = PT.split_held_out(logged, 0.1, seed=0)
    assert len(fit) == 540
    assert len(held_out) == 60
    assert len(set(fit.tolist())) == 540
    # together they are the log, row for row (compared as sorted rows of slate and reward)
    together = np.column_stack([
        np.concatenate([logged.slates[fit], held_out.slates]),
        np.concatenate([logged.rewards[fit], held_out.rewards]),
    ])  # fmt: skip
    whole = np.column_stack([logged.slates, logged.rewards])
    assert (np.unique(together, axis=0) == np.unique(whole, axis=0)).all()
    every, none = PT.split_held_out(logged, 0.05, seed=0)  # 30 rows: too few to stop on
    assert none is None
    assert (every == np.arange(600)).all()


def test_the_offline_fit_stops_when_held_out_logs_stop_improving_and_keeps_its_best(world):
    sim, compiled, adapter = world
    torch.manual_seed(0)
    logged, states, _ = PS.simulate_logged(sim, adapter, 1500, np.random.default_rng(5))
    engine = [PS.engine_context(sim, s) for s in states]
    # A large step size over-fits 1,350 rows fast: the held-out loss turns up early.
    critic = PT.CriticConfig(lr=0.03, weight_decay=0.0)
    config = PT.ImprovementConfig(
        offline_steps=3000, validation_every=10, patience=3, distill_weight=0.0, critic=critic
    )
    measured = []

    def logger(phase, step, loss):
        if phase == "critic_held_out":
            measured.append((step, loss))

    result = PT.train_policy(
        shape=ScorerShape.from_schema(adapter.schema), items=adapter.items,
        rules=adapter.rules, k=sim.config.slate_size, demonstrations=None, logged=logged,
        logged_engine=engine, config=config, logger=logger,
    )  # fmt: skip
    steps, losses = zip(*measured, strict=True)
    best = int(np.argmin(losses))
    assert len(measured) == best + 1 + config.patience < 300  # stopped, long before 3,000
    assert result.offline_steps == steps[best]
    _, held_out = PT.split_held_out(logged, config.validation_share, critic.seed)
    assert result.improver.held_out_loss(held_out) == pytest.approx(losses[best], rel=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [("offline_steps", -1), ("validation_share", 1.0), ("validation_share", -0.1),
     ("validation_every", 0), ("patience", 0)],
)  # fmt: skip
def test_bad_offline_fit_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        PT.ImprovementConfig(**{field: value})


def test_no_offline_steps_leaves_the_critic_untouched_even_with_held_out_rows(world):
    sim, compiled, adapter = world
    torch.manual_seed(0)
    logged, states, _ = PS.simulate_logged(sim, adapter, 1000, np.random.default_rng(6))
    result = PT.train_policy(
        shape=ScorerShape.from_schema(adapter.schema), items=adapter.items,
        rules=adapter.rules, k=sim.config.slate_size, demonstrations=None, logged=logged,
        logged_engine=[PS.engine_context(sim, s) for s in states],
        config=PT.ImprovementConfig(offline_steps=0),
    )  # fmt: skip
    assert result.offline_steps == 0
    assert result.improver.trainer.steps == 0


def test_logged_contexts_reach_as_far_into_sessions_as_asked(world):
    sim, _, adapter = world
    _, early, _ = PS.simulate_logged(sim, adapter, 400, np.random.default_rng(7))
    _, whole, _ = PS.simulate_logged(
        sim, adapter, 400, np.random.default_rng(7), session_steps=sim.config.horizon - 1
    )
    assert max(state.t for state in early) <= 3
    assert max(state.t for state in whole) > 3
    assert all(not state.left for state in early + whole)  # live sessions only
    # Deeper contexts carry more of the session's fatigue.
    assert np.mean([s.fatigue.sum() for s in whole]) > np.mean([s.fatigue.sum() for s in early])


def test_logged_contexts_refuse_a_negative_session_depth(world):
    sim, _, adapter = world
    with pytest.raises(ValueError, match="session_steps"):
        PS.simulate_logged(sim, adapter, 10, np.random.default_rng(0), session_steps=-1)
