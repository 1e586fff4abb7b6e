"""The recommender policy (training/ml/policy.py, policy_training.py): slates never break a
hard rule, propensities are exact, behaviour cloning learns a known preference, dual ascent
moves the multiplier the right way, exploration stays within its support, checkpoints round
trip, and the ranking metrics equal hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.engine.core import (
    CatalogArrays,
    CompiledPolicy,
    EngineContext,
    ForbiddenTopics,
    LowSourceDiversity,
    MaxAudienceRating,
    MaxItemsPerTopic,
    MaxSensitivity,
    MinDistinctSources,
    RecentTopicRepeat,
    SensitiveTopicPenalty,
)
from training.ml import features as F
from training.ml import policy_training as PT
from training.ml.policy import (
    ClonedPolicy,
    ContextTensors,
    ItemTensors,
    RecommenderPolicy,
    ScorerShape,
    SlateRules,
    ValueCritic,
    build_slates,
    load_policy,
    save_policy,
)
from training.ml.reward_model import CheckpointError

# --- a random world ---------------------------------------------------------------------------


def random_catalog(rng: np.random.Generator, n: int, n_topics: int = 4, n_sources: int = 3):
    topics = np.full((n, 2), -1, dtype=np.int64)
    topics[:, 0] = rng.integers(0, n_topics, size=n)
    second = rng.integers(0, n_topics, size=n)
    has = (rng.random(n) < 0.4) & (second != topics[:, 0])
    topics[has, 1] = second[has]
    view = F.CatalogView(
        item_features=rng.normal(size=(n, 3)).astype(np.float32),
        item_topics=topics,
        item_source=rng.integers(0, n_sources, size=n),
        item_sensitivity=rng.integers(0, 4, size=n),
        item_rating=rng.integers(0, 3, size=n),
        n_topics=n_topics,
        n_sources=n_sources,
    )
    arrays = CatalogArrays.build(
        item_keys=np.arange(100, 100 + n),
        topics=topics,
        source=view.item_source,
        sensitivity=view.item_sensitivity,
        rating=view.item_rating,
        topic_names=[f"t{t}" for t in range(n_topics)],
        topic_sensitive=[t == n_topics - 1 for t in range(n_topics)],
    )
    return view, arrays


def random_policy(rng: np.random.Generator, arrays: CatalogArrays) -> CompiledPolicy:
    hard = []
    if rng.random() < 0.5:
        hard.append(ForbiddenTopics("forbidden", (int(rng.integers(0, 4)),), ("minor",)))
    if rng.random() < 0.5:
        hard.append(MaxSensitivity("sensitivity", None, int(rng.integers(1, 4))))
    if rng.random() < 0.5:
        hard.append(MaxAudienceRating("rating", "minor", 1))
    if rng.random() < 0.7:
        hard.append(MinDistinctSources("sources", int(rng.integers(1, 4))))
    if rng.random() < 0.7:
        hard.append(MaxItemsPerTopic("per-topic", int(rng.integers(1, 3))))
    soft = [
        SensitiveTopicPenalty("sensitive", 0.5),
        RecentTopicRepeat("recent", 0.25, 2),
        LowSourceDiversity("variety", 0.5, 3),
    ]
    return CompiledPolicy(arrays, hard, soft)


def contexts_for(b: int, n_topics: int, rng: np.random.Generator, n_segments: int = 2):
    return F.Contexts(
        segment=rng.integers(0, n_segments, size=b),
        minor=rng.random(b) < 0.5,
        situation=rng.random((b, 6)).astype(np.float32),
        history_topics=rng.random((b, n_topics)).astype(np.float32),
        topic_click_rate=rng.random((b, n_topics)).astype(np.float32),
        recent_exposure=rng.random((b, n_topics)).astype(np.float32),
    )


def engine_contexts(contexts: F.Contexts, rng: np.random.Generator, n_topics: int):
    return [
        EngineContext("minor" if minor else "adult", rng.integers(0, n_topics, size=3))
        for minor in contexts.minor
    ]


def shape_of(view: F.CatalogView, n_segments: int = 2) -> ScorerShape:
    return ScorerShape(view.n_topics, view.n_sources, n_segments, view.item_features.shape[1])


# --- 1. no slate breaks a hard rule -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 12),
    k=st.integers(1, 6),
    greedy=st.booleans(),
    explore=st.booleans(),
)
def test_no_slate_the_policy_outputs_breaks_a_hard_rule(seed, n, k, greedy, explore):
    rng = np.random.default_rng(seed)
    view, arrays = random_catalog(rng, n)
    compiled = random_policy(rng, arrays)
    rules = SlateRules.from_compiled(compiled)
    contexts = contexts_for(4, view.n_topics, rng)
    engine = engine_contexts(contexts, rng, view.n_topics)
    inputs = PT.policy_inputs(compiled, rules, contexts, engine, 2)
    with torch.random.fork_rng():
        torch.manual_seed(seed % 1000)
        policy = RecommenderPolicy(
            shape=shape_of(view),
            cloned=ClonedPolicy(shape_of(view), hidden=8),
            critic=ValueCritic(shape_of(view), hidden=8),
            multiplier=float(rng.random()),
            temperature=float(rng.uniform(0.2, 3)),
        )
    items = ItemTensors.from_catalog(view)
    if explore:
        settings_ = PT.ExplorationSettings(stage=int(rng.integers(1, 3)), share=0.7, top_m=3)
        slates = PT.serve_slates(
            policy, settings_, inputs, items, k, rules, budget_left=3, rng=rng
        ).items
    else:
        slates = policy.slates(
            inputs.contexts, items, inputs.allowed, k, rules, greedy=greedy,
            item_penalties=inputs.penalties, rng=rng,
        ).items  # fmt: skip
    for context, slate in zip(engine, slates, strict=True):
        shown = slate[slate >= 0]
        assert (slate[len(shown) :] == -1).all()
        assert compiled.violations(context, shown) == []
        assert compiled.allowed_mask(context, shown).all()
    assert PT.hard_violation_rate(compiled, engine, slates) == 0.0


def test_the_slate_is_full_whenever_the_catalog_allows():
    rng = np.random.default_rng(0)
    view, arrays = random_catalog(rng, 40, n_topics=6, n_sources=5)
    compiled = CompiledPolicy(arrays, [MinDistinctSources("s", 3), MaxItemsPerTopic("t", 2)], [])
    rules = SlateRules.from_compiled(compiled)
    allowed = np.ones((8, 40), dtype=bool)
    batch = build_slates(rng.normal(size=(8, 40)), allowed, 5, rules, rng=rng)
    assert (batch.items >= 0).all()


# --- 2. exact propensities --------------------------------------------------------------------


def tiny_rules_and_catalog():
    rng = np.random.default_rng(4)
    view, arrays = random_catalog(rng, 5, n_topics=2, n_sources=2)
    compiled = CompiledPolicy(
        arrays,
        [MinDistinctSources("sources", 2), MaxItemsPerTopic("per-topic", 2)],
        [LowSourceDiversity("variety", 0.5, 3), SensitiveTopicPenalty("sensitive", 0.4)],
    )
    return view, compiled, SlateRules.from_compiled(compiled)


def all_sequences(n: int, k: int):
    for length in range(0, k + 1):
        yield from itertools.permutations(range(n), length)


@pytest.mark.parametrize("support_row", [None, [True, False, True, True, False]])
def test_propensities_sum_to_one_over_every_slate_of_a_tiny_catalog(support_row):
    view, compiled, rules = tiny_rules_and_catalog()
    k = 3
    logits = np.array([[0.3, -1.0, 2.0, 0.5, 0.0]])
    allowed = np.array([[True, True, True, True, False]])
    penalties = rules.item_penalties([EngineContext("adult")])
    support = None if support_row is None else np.array([support_row])
    total = 0.0
    for sequence in all_sequences(5, k):
        forced = np.full((1, k), -1)
        forced[0, : len(sequence)] = sequence
        probability = build_slates(
            logits, allowed, k, rules, temperature=0.7, diversity=0.4,
            item_penalties=penalties, penalty_scale=1.5, support=support, forced=forced,
        ).propensity[0]  # fmt: skip
        if probability > 0:
            assert compiled.violations(EngineContext("adult"), list(sequence)) == []
        total += probability
    assert total == pytest.approx(1.0, abs=1e-12)


def test_forced_slate_propensity_equals_the_sampled_propensity():
    rng = np.random.default_rng(1)
    view, arrays = random_catalog(rng, 30, n_topics=5, n_sources=4)
    compiled = random_policy(rng, arrays)
    rules = SlateRules.from_compiled(compiled)
    logits = rng.normal(size=(16, 30)) * 2
    allowed = rng.random((16, 30)) < 0.8
    penalties = rng.random((16, 30))
    common = {
        "temperature": 0.8,
        "diversity": 0.5,
        "item_penalties": penalties,
        "penalty_scale": 0.7,
    }
    sampled = build_slates(logits, allowed, 4, rules, rng=rng, **common)
    forced = build_slates(logits, allowed, 4, rules, forced=sampled.items, **common)
    assert np.allclose(forced.propensity, sampled.propensity, rtol=1e-12)
    assert (sampled.propensity > 0).all()
    greedy = build_slates(logits, allowed, 4, rules, greedy=True, **common)
    assert (greedy.propensity == 1).all()
    again = build_slates(logits, allowed, 4, rules, greedy=True, forced=greedy.items, **common)
    assert (again.propensity == 1).all()


def test_sampling_frequencies_match_the_propensities():
    view, compiled, rules = tiny_rules_and_catalog()
    logits = np.array([[0.3, -1.0, 2.0, 0.5, 0.0]])
    allowed = np.ones((1, 5), dtype=bool)
    rng = np.random.default_rng(0)
    draws = 20000
    batch = build_slates(
        np.repeat(logits, draws, axis=0), np.repeat(allowed, draws, axis=0), 2, rules, rng=rng
    )
    slates, counts = np.unique(batch.items, axis=0, return_counts=True)
    for slate, count in zip(slates, counts, strict=True):
        p = build_slates(logits, allowed, 2, rules, forced=slate[None]).propensity[0]
        assert count / draws == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / draws) + 1e-3)


def test_target_pscores_are_the_policys_probabilities_of_logged_slates():
    rng = np.random.default_rng(2)
    view, arrays = random_catalog(rng, 20)
    compiled = random_policy(rng, arrays)
    rules = SlateRules.from_compiled(compiled)
    contexts = contexts_for(6, view.n_topics, rng)
    inputs = PT.policy_inputs(compiled, rules, contexts, engine_contexts(contexts, rng, 4), 2)
    items = ItemTensors.from_catalog(view)
    torch.manual_seed(0)
    policy = RecommenderPolicy(shape=shape_of(view), cloned=ClonedPolicy(shape_of(view), 8))
    sampled = policy.slates(
        inputs.contexts, items, inputs.allowed, 3, rules, rng=rng, item_penalties=inputs.penalties
    )
    scores = PT.target_pscores(policy, inputs, items, 3, rules, sampled.items)
    assert np.allclose(scores, sampled.propensity)
    greedy = policy.slates(
        inputs.contexts, items, inputs.allowed, 3, rules, greedy=True,
        item_penalties=inputs.penalties,
    ).items  # fmt: skip
    assert (PT.target_pscores(policy, inputs, items, 3, rules, greedy, greedy=True) == 1).all()


# --- soft penalties ---------------------------------------------------------------------------


def test_slate_penalties_equal_the_constraint_engine():
    rng = np.random.default_rng(3)
    view, arrays = random_catalog(rng, 25)
    compiled = random_policy(rng, arrays)
    rules = SlateRules.from_compiled(compiled)
    contexts = contexts_for(10, view.n_topics, rng)
    engine = engine_contexts(contexts, rng, view.n_topics)
    slates = np.stack([rng.permutation(25)[:4] for _ in range(10)])
    slates[3, 2:] = -1
    values = PT.slate_penalties(rules, rules.item_penalties(engine), slates)
    expected = [compiled.penalty(c, s[s >= 0]) for c, s in zip(engine, slates, strict=True)]
    assert np.allclose(values, expected)
    assert PT.mean_soft_penalty(compiled, engine, slates) == pytest.approx(np.mean(expected))


# --- 3. behaviour cloning ---------------------------------------------------------------------


def synthetic_demonstrations(rng, view, n_steps: int, k: int = 3):
    """Experts choose the items of the context's favourite topic (its largest click rate),
    in order of item quality (feature 0), and reject an item of another topic as
    irrelevant."""
    contexts = contexts_for(n_steps, view.n_topics, rng)
    favourite = contexts.topic_click_rate.argmax(axis=1)
    quality = view.item_features[:, 0]
    chosen = np.full((n_steps, k), -1)
    candidates = np.zeros((n_steps, 12), dtype=np.int64)
    rejected = np.full((n_steps, 1), -1)
    for s in range(n_steps):
        pool = rng.choice(view.n_items, size=12, replace=False)
        candidates[s] = pool
        good = [i for i in pool if view.item_topics[i, 0] == favourite[s]]
        good.sort(key=lambda i: -quality[i])
        chosen[s, : min(k, len(good))] = good[:k]
        bad = [i for i in pool if view.item_topics[i, 0] != favourite[s]]
        rejected[s, 0] = bad[0]
    steps = PT.DemonstrationSteps(
        contexts=contexts,
        chosen=chosen,
        candidates=candidates,
        rejected=rejected,
        reasons=np.full((n_steps, 1), PT.REJECT_REASONS.index("irrelevant")),
        weights=np.ones(n_steps, dtype=np.float32),
    )
    return steps, favourite


def test_behaviour_cloning_learns_a_known_preference():
    rng = np.random.default_rng(0)
    view, _ = random_catalog(rng, 60, n_topics=4)
    view = F.CatalogView(
        item_features=view.item_features,
        item_topics=np.stack([view.item_topics[:, 0], np.full(60, -1)], axis=1),
        item_source=view.item_source,
        item_sensitivity=view.item_sensitivity,
        item_rating=view.item_rating,
        n_topics=4,
        n_sources=3,
    )
    items = ItemTensors.from_catalog(view)
    train, _ = synthetic_demonstrations(rng, view, 300)
    result = PT.train_behaviour_cloning(
        train, items, shape_of(view), PT.BCConfig(hidden=16, epochs=40, lr=1e-2)
    )
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    test, favourite = synthetic_demonstrations(rng, view, 100)
    contexts = ContextTensors.from_contexts(test.contexts, 2)
    with torch.no_grad():
        logits = result.policy(contexts, items).numpy()
    top = logits.argmax(axis=1)
    assert (view.item_topics[top, 0] == favourite).mean() >= 0.85
    shown = np.zeros(logits.shape, dtype=bool)  # rank what the expert was shown
    np.put_along_axis(shown, test.candidates, True, axis=1)
    ranked = PT.ranked_items(logits, shown, 3)
    assert PT.hit_at_k(ranked, test.chosen, 3) > 0.6
    assert PT.ndcg_at_k(ranked, test.chosen, 3) > 0.6


def test_behaviour_cloning_pushes_rejected_items_below_chosen_ones():
    rng = np.random.default_rng(1)
    view, _ = random_catalog(rng, 30)
    items = ItemTensors.from_catalog(view)
    contexts = contexts_for(64, view.n_topics, rng)
    unsafe = 7
    steps = PT.DemonstrationSteps(
        contexts=contexts,
        chosen=np.tile([[1, 2]], (64, 1)),
        candidates=np.tile([[1, 2, 3, 4]], (64, 1)),
        rejected=np.full((64, 1), unsafe),
        reasons=np.full((64, 1), PT.REJECT_REASONS.index("unsafe")),
        weights=np.ones(64, dtype=np.float32),
    )
    policy = PT.train_behaviour_cloning(
        steps, items, shape_of(view), PT.BCConfig(hidden=8, epochs=30, lr=1e-2)
    ).policy
    with torch.no_grad():
        scores = policy(ContextTensors.from_contexts(contexts, 2), items).numpy()
    assert (scores[:, unsafe] < scores[:, [1, 2]].min(axis=1) - 0.5).all()


# --- the critic ------------------------------------------------------------------------------


def test_the_critic_learns_clicks_and_harm_from_logged_rewards():
    rng = np.random.default_rng(0)
    view, _ = random_catalog(rng, 20)
    items = ItemTensors.from_catalog(view)
    good, harmful = 3, 5
    n, k = 4000, 2
    contexts = contexts_for(n, view.n_topics, rng)
    slates = np.stack([rng.permutation(20)[:k] for _ in range(n)])
    w = F.position_weights(k)
    click_p = np.where(slates == good, 0.8, 0.1) * w
    clicks = rng.random((n, k)) < click_p
    harm = (slates == harmful) * 1.5
    rewards = clicks.sum(axis=1) - (w * harm).sum(axis=1)
    buffer = PT.ReplayBuffer(n, view.n_topics, k)
    buffer.add(contexts, slates, rewards, clicks)
    torch.manual_seed(0)
    critic = ValueCritic(shape_of(view), hidden=16)
    before = [p.detach().clone() for p in critic.parameters()]
    trainer = PT.CriticTrainer(critic, items, 2, PT.CriticConfig(lr=3e-3, batch_size=256))
    for _ in range(800):
        trainer.step(buffer, rng)
    assert any(not torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
    policy = RecommenderPolicy(shape=shape_of(view), critic=critic)
    click, harm_cost = policy.value_parts(
        ContextTensors.from_contexts(contexts.take(np.arange(50)), 2), items
    )
    click, harm_cost = click.mean(axis=0), harm_cost.mean(axis=0)
    assert click[good] == pytest.approx(0.8, abs=0.12)
    assert np.delete(click, good).max() < 0.3
    assert harm_cost[harmful] == pytest.approx(1.5, abs=0.3)
    assert np.delete(harm_cost, harmful).max() < 0.3
    values = policy.values(ContextTensors.from_contexts(contexts.take(np.arange(50)), 2), items)
    assert values.mean(axis=0).argmax() == good
    assert values.mean(axis=0).argmin() == harmful


def test_prioritized_replay_prefers_large_errors_and_corrects_with_weights():
    rng = np.random.default_rng(0)
    buffer = PT.ReplayBuffer(10, 3, 2, alpha=1.0)
    contexts = contexts_for(4, 3, rng)
    rows = buffer.add(contexts, np.zeros((4, 2), dtype=np.int64), np.zeros(4))
    buffer.update_priorities(rows, np.array([1.0, 1.0, 1.0, 7.0]))
    picked, weights = buffer.sample(5000, rng, beta=1.0)
    assert np.mean(picked == 3) == pytest.approx(0.7, abs=0.03)
    assert weights[picked == 3].max() < weights[picked == 0].min()


# --- dual ascent ------------------------------------------------------------------------------


def test_dual_ascent_step_raises_the_multiplier_over_budget_and_lowers_it_under():
    assert PT.dual_ascent_step(0.5, expected_penalty=2.0, budget=1.0, lr=0.1) == 0.6
    assert PT.dual_ascent_step(0.5, expected_penalty=0.0, budget=1.0, lr=0.1) == 0.4
    assert PT.dual_ascent_step(0.05, expected_penalty=0.0, budget=1.0, lr=0.1) == 0.0


def test_dual_ascent_drives_the_expected_penalty_under_the_budget():
    rng = np.random.default_rng(0)
    view, arrays = random_catalog(rng, 40, n_topics=4, n_sources=4)
    compiled = CompiledPolicy(arrays, [], [SensitiveTopicPenalty("sensitive", 1.0)])
    rules = SlateRules.from_compiled(compiled)
    contexts = contexts_for(64, view.n_topics, rng)
    engine = [EngineContext("adult")] * 64
    inputs = PT.policy_inputs(compiled, rules, contexts, engine, 2)
    items = ItemTensors.from_catalog(view)
    # A critic that likes exactly the penalized (sensitive-topic) items.
    sensitive = (view.item_topics == view.n_topics - 1).any(axis=1)
    policy = RecommenderPolicy(shape=shape_of(view), critic=ValueCritic(shape_of(view), 8))
    values = np.where(sensitive, 1.0, 0.0)
    logits = lambda *_: values[None, :].repeat(64, 0) / policy.kl_coefficient  # noqa: E731
    policy.logits = logits
    budget = 0.5
    start = PT.expected_penalty(policy, inputs, items, 3, rules, greedy=True)
    assert start > budget
    multipliers, penalties = [], []
    for _ in range(40):
        penalty = PT.expected_penalty(policy, inputs, items, 3, rules, greedy=True)
        penalties.append(penalty)
        policy.multiplier = PT.dual_ascent_step(policy.multiplier, penalty, budget, 0.2)
        multipliers.append(policy.multiplier)
    assert multipliers[0] > 0
    assert multipliers[5] > multipliers[0]
    assert penalties[-1] <= budget
    assert PT.expected_penalty(policy, inputs, items, 3, rules, greedy=True) < start


# --- 4. staged exploration --------------------------------------------------------------------


def exploration_world(seed: int = 0):
    rng = np.random.default_rng(seed)
    view, arrays = random_catalog(rng, 50, n_topics=5, n_sources=5)
    compiled = CompiledPolicy(
        arrays, [MaxSensitivity("s", None, 2), MinDistinctSources("d", 2)], []
    )
    rules = SlateRules.from_compiled(compiled)
    contexts = contexts_for(200, view.n_topics, rng)
    inputs = PT.policy_inputs(compiled, rules, contexts, [EngineContext("adult")] * 200, 2)
    torch.manual_seed(seed)
    shape = shape_of(view)
    policy = RecommenderPolicy(
        shape=shape, cloned=ClonedPolicy(shape, 8), critic=ValueCritic(shape, 8)
    )
    return rng, view, rules, inputs, ItemTensors.from_catalog(view), policy


def test_stage_zero_is_greedy():
    rng, view, rules, inputs, items, policy = exploration_world()
    served = PT.serve_slates(
        policy, PT.ExplorationSettings(stage=0), inputs, items, 3, rules, budget_left=100, rng=rng
    )
    assert (served.items == served.greedy).all()
    assert (served.propensity == 1).all()
    assert not served.explored.any()


def test_stage_one_samples_only_among_the_clones_top_m_the_reward_model_is_sure_about():
    rng, view, rules, inputs, items, policy = exploration_world()
    cloned = policy.cloned_logits(inputs.contexts, items)
    top = PT.top_m_mask(cloned, inputs.allowed, 6)
    unsure_item = 11

    def uncertainty(first, candidates):
        return np.where(candidates == unsure_item, 0.4, 0.01)

    settings_ = PT.ExplorationSettings(
        stage=1, share=1.0, top_m=6, max_uncertainty=0.1, max_harm=math.inf
    )
    served = PT.serve_slates(
        policy, settings_, inputs, items, 3, rules, budget_left=10_000, rng=rng,
        uncertainty=uncertainty,
    )  # fmt: skip
    support = top.copy()
    support[:, unsure_item] = False
    assert (served.support == support).all()
    assert served.explored.all()
    for row, slate in enumerate(served.items):
        for item in slate[slate >= 0]:
            # Outside the support only the greedy feasible item may appear.
            assert support[row, item] or item in served.greedy[row]
    shown_unsure = (served.items == unsure_item).any(axis=1)
    assert (served.greedy[shown_unsure] == unsure_item).any(axis=1).all()
    assert (served.items != served.greedy).any(axis=1).mean() > 0.3


def test_stage_one_leaves_out_items_the_critic_expects_to_harm():
    rng, view, rules, inputs, items, policy = exploration_world()
    harm = np.zeros(inputs.allowed.shape)
    harm[:, ::2] = 0.5  # every other item looks harmful
    settings_ = PT.ExplorationSettings(stage=1, share=1.0, top_m=8, max_harm=0.1)
    support = PT.exploration_support(policy, settings_, inputs, items, harm=harm)
    assert support.any()
    assert not support[:, ::2].any()


def test_stage_two_widens_the_support_and_the_daily_budget_caps_exploration():
    rng, view, rules, inputs, items, policy = exploration_world()
    narrow = PT.ExplorationSettings(stage=1, share=1.0, top_m=5)
    wide = PT.ExplorationSettings(stage=2, share=1.0, wide_top_m=20)
    s1 = PT.exploration_support(policy, narrow, inputs, items)
    s2 = PT.exploration_support(policy, wide, inputs, items)
    assert s1.sum(axis=1).max() <= 5
    assert (s2.sum(axis=1) == 20).all()
    served = PT.serve_slates(policy, wide, inputs, items, 3, rules, budget_left=30, rng=rng)
    assert served.explored.sum() == 30
    assert (served.items[~served.explored] == served.greedy[~served.explored]).all()
    rows = np.flatnonzero(served.explored)
    first = served.items[rows, 0]
    assert (served.support[rows, first] | (first == served.greedy[rows, 0])).all()


def test_served_propensities_are_exact_mixtures():
    rng, view, rules, inputs, items, policy = exploration_world()
    settings_ = PT.ExplorationSettings(stage=2, share=0.3, wide_top_m=4)
    one = inputs.take([0])
    k = 2
    greedy = policy.slates(one.contexts, items, one.allowed, k, rules, greedy=True).items[0]
    total = 0.0
    draws = 4000
    repeated = one.take(np.zeros(draws, dtype=int))
    served = PT.serve_slates(
        policy, settings_, repeated, items, k, rules, budget_left=draws, rng=rng
    )
    slates, counts = np.unique(served.items, axis=0, return_counts=True)
    for slate, count in zip(slates, counts, strict=True):
        p = served.propensity[(served.items == slate).all(axis=1)][0]
        total += p
        assert count / draws == pytest.approx(p, abs=4 * math.sqrt(p / draws) + 2e-3)
    assert (served.items == greedy).all(axis=1).any()
    assert total <= 1.0 + 1e-9


# --- checkpoints ------------------------------------------------------------------------------


def test_save_and_load_give_identical_outputs_and_check_the_sha256(tmp_path):
    rng = np.random.default_rng(0)
    view, arrays = random_catalog(rng, 30)
    schema = F.FeatureSchema(
        n_topics=view.n_topics, n_sources=view.n_sources, n_segments=2, item_dim=3,
        max_slate_size=4,
    )  # fmt: skip
    shape = ScorerShape.from_schema(schema)
    torch.manual_seed(0)
    policy = RecommenderPolicy(
        shape=shape, cloned=ClonedPolicy(shape, 16), critic=ValueCritic(shape, 8),
        kl_coefficient=0.07, multiplier=0.3, temperature=0.9, harm_aversion=1.5, step=12,
    )  # fmt: skip
    path = tmp_path / "policy.pt"
    digest = save_policy(path, policy, schema)  # each network's own width is saved
    loaded = load_policy(path, sha256=digest, schema=schema)
    items = ItemTensors.from_catalog(view)
    contexts = ContextTensors.from_contexts(contexts_for(5, view.n_topics, rng), 2)
    assert np.array_equal(policy.logits(contexts, items), loaded.logits(contexts, items))
    assert (loaded.multiplier, loaded.kl_coefficient, loaded.step) == (0.3, 0.07, 12)
    assert loaded.harm_aversion == 1.5
    assert loaded.diversity_weight == pytest.approx(policy.diversity_weight)
    with pytest.raises(CheckpointError, match="sha256"):
        load_policy(path, sha256="0" * 64, schema=schema)
    other = F.FeatureSchema(
        n_topics=view.n_topics + 1, n_sources=view.n_sources, n_segments=2, item_dim=3,
        max_slate_size=4,
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="schema"):
        load_policy(path, sha256=digest, schema=other)


def test_a_policy_without_a_critic_round_trips(tmp_path):
    schema = F.FeatureSchema(n_topics=3, n_sources=2, n_segments=2, item_dim=2, max_slate_size=3)
    shape = ScorerShape.from_schema(schema)
    policy = RecommenderPolicy(shape=shape, cloned=ClonedPolicy(shape, 8))
    digest = save_policy(tmp_path / "p.pt", policy, schema, hidden=8)
    loaded = load_policy(tmp_path / "p.pt", sha256=digest, schema=schema)
    assert loaded.critic is None
    assert loaded.cloned is not None


# --- 5. evaluation helpers --------------------------------------------------------------------


def test_hit_at_k_and_ndcg_equal_hand_computed_values():
    ranked = np.array([[5, 1, 7, 2], [3, 4, 9, -1]])
    expert = np.array([[1, 2, 3], [8, 9, -1]])
    # Row 0: top 2 = {5, 1}, chosen {1, 2, 3}: 1 of min(2, 3) = 0.5; row 1: {3, 4} ∩ {8, 9} = 0.
    assert PT.hit_at_k(ranked, expert, 2) == pytest.approx(0.25)
    # Top 3: row 0 {5, 1, 7} → 1/3; row 1 {3, 4, 9} → 1/2.
    assert PT.hit_at_k(ranked, expert, 3) == pytest.approx((1 / 3 + 1 / 2) / 2)
    # NDCG@3, row 0: gains 1→3, 2→2, 3→1; ranked 5, 1, 7 → DCG = 3 / log2(3);
    # ideal = 3 + 2 / log2(3) + 1 / 2.
    row0 = (3 / math.log2(3)) / (3 + 2 / math.log2(3) + 0.5)
    # Row 1: gains 8→2, 9→1; ranked 3, 4, 9 → DCG = 1 / 2; ideal = 2 + 1 / log2(3).
    row1 = 0.5 / (2 + 1 / math.log2(3))
    assert PT.ndcg_at_k(ranked, expert, 3) == pytest.approx((row0 + row1) / 2)
    assert PT.ndcg_at_k(np.array([[1, 2, 3]]), np.array([[1, 2, 3]]), 3) == pytest.approx(1.0)


def test_diversity_coverage_novelty_and_exposure_by_hand():
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    slates = np.array([[0, 1, -1], [0, 2, -1]])
    # Slate 0: 1 − cos = 1; slate 1: identical vectors, 0.
    assert PT.intra_list_diversity(unit, slates) == pytest.approx(0.5)
    assert PT.catalog_coverage(slates, 6) == pytest.approx(3 / 6)
    popularity = np.array([5.0, 1.0, 0.0])  # shares (c + 1) / 9: 6/9, 2/9, 1/9
    expected = -(2 * math.log2(6 / 9) + math.log2(2 / 9) + math.log2(1 / 9)) / 4
    assert PT.novelty(slates, popularity) == pytest.approx(expected)
    sources = np.array([0, 1, 1])
    exposure = PT.exposure_by_segment(slates, np.array([0, 1]), sources, 2, 3)
    w1 = 1 / math.log2(3)
    assert exposure[0] == pytest.approx([1 / (1 + w1), w1 / (1 + w1)])
    assert exposure[1] == pytest.approx([1 / (1 + w1), w1 / (1 + w1)])
    assert exposure[2].tolist() == [0.0, 0.0]
