"""Learning from demonstrations against learning by trial and error, in the simulator.

    python bench/policy.py [--budget 16000] [--seed 0] [--methods random,...] [--grid ...]
                           [--tastes segment|individual] [--kl 0.01]

World. The simulator (training/ml/simulator.py, default parameters but 1,000 items instead
of 2,000, for run time, and ``tastes="segment"``): 500 users, slates of 5, sessions of at
most 20 steps. Users share their segment's tastes, so the oracle below is the best policy
that a recommender seeing the context could reach: with individual hidden tastes (the
simulator's default, ``--tastes individual``) no policy that sees only the context can
come near the oracle (a policy with the exact segment-level tastes returns 0.90 of it),
and "within 5% of the oracle" would measure what contexts hide rather than how a learner
learns. Each user's harm tolerance stays hidden (measured: it costs nothing here). The
content policy is training/ml/policy_sim.py's (hard: no sensitive topics, nothing above
sensitivity 1 and no adults-only items for minors, no sensitivity 3 for anyone, ≥ 3
sources and ≤ 2 items per topic per slate; soft: sensitive topics, recent-topic repeats,
source variety).
Every method builds its slates with the same slate builder (training/ml/policy.py) under
the same hard-rule masks and slate rules.

Learning. Each method serves LANES = 64 sessions side by side for BUDGET = 16,000
interactions (an interaction is one slate shown). A session starts from a returning user
(experts.sample_contexts: 0-40 earlier logged impressions in its history), the same
sequence of starts for every method, and ends when the user leaves or after 20 steps.
After each round of 64 slates the learner sees the clicks and rewards and may update.

Methods.
- random: uniformly random feasible slates.
- popularity: greedy by log(1 + clicks) per item, counted in the log and then online.
- bc: behaviour cloning on the demonstrations (below), greedy, never updated.
- scratch: ours' critic network (ValueCritic, same width, same trainer, prioritized replay
  and UPDATES = 4 steps per round) from random weights, without demonstrations, reward
  model or log; greedy on q̂ with exploration, either ε-greedy (a uniformly random
  feasible slate with probability ε) or a softmax over q̂ / τ. The whole grid
  ε ∈ {0.02, 0.05, 0.1, 0.2}, τ ∈ {0.01, 0.03, 0.1} (reward units) is run and the setting
  with the highest mean return during learning (the area under its learning curve over
  the budget: speed and level together) is reported; every setting's figures go to
  stderr.
- ours: 200 simulated demonstrations (policy_sim.py: 5 reviewers of different noise and
  reliability weight, up to 6 steps each) → behaviour cloning; a reward model
  (RewardModelConfig defaults) on 4,000 simulated expert comparisons plus the
  demonstrations' rejections; offline conservative improvement
  (policy_training.train_policy: the critic on 10,000 logged impressions of the logging
  policy, each at a step of a live session (0–19 steps in, as a log of whole sessions
  holds them), 10% of them held out to stop the fit early, and on the reward model's
  judgments, harm aversion ν = 2, λ by dual ascent to an expected soft penalty of 0.5 per
  slate); then online the same critic updates as scratch, a dual-ascent step on λ every
  5 rounds, and staged exploration: 20% of requests explore while the day's 800
  exploring slates last, a day being 4,000 interactions; at stage 1, where it starts,
  only among the clone's top 10 items that the reward model is sure about and the critic
  expects no harm from. At the end of each day the admin looks at the day's figures and,
  when the day was clean (no hard violation, nobody driven away, harmful items on at most
  1 slate in 1,000), moves it up a stage, to stage 2 at most (the deployed policy's top 50
  items): the product's staged rollout, an admin's action beside the monitored figures.
  β (how close to the cloned policy it stays) is tuned like scratch's exploration, over
  β ∈ {0.002, 0.005, 0.01, 0.02, 0.05} reward units per nat by the same criterion
  (BENCHMARKS.md gives every value's figures; 0.01 and 0.002 tie over seeds 0–2, and the
  more conservative 0.01 is the default of --kl; the product's default stays 0.05, an
  admin setting: real logs are not this simulator).
- oracle: the simulator's true one-step item values (it knows each user's tolerance and
  fatigue) through the same greedy slate builder: the exact one-step optimum under the
  hard rules (up to the builder's greedy handling of the slate rules).

Figures, per method.
- bad_experiences: the simulator's bad-experience events during learning: every harmful
  item shown, plus every user driven away (a departure the user would not have made had
  the slate not harmed them: the simulator's ``user_left`` events with cause
  ``driven_away``). Users also end sessions at a base rate that depends only on how long
  the session has run (the simulator's docstring: mean fatigue is the same after any
  slate); those departures (``anyway``; about 400 per method here, the oracle's
  included) are not the recommender's doing and go to stderr as ``users_left``.
- regret: Σ over the interactions of E[r | the oracle's slate] − E[r | the shown slate]
  (exact expected one-step rewards in the state the slate was shown in).
- hard_violations: shown slates breaking a hard rule (CompiledPolicy.violations).
- final_return: the mean discounted return Σ_t 0.9^t E[r_t] of the method's greedy policy
  (no exploration) over EVAL_SESSIONS fixed evaluation sessions (expected rewards; sampled
  responses drive the sessions) after the budget; the same evaluation runs before learning
  and at the CHECKPOINTS (dense early: 256, 512, 1,024, 2,048, 3,008 interactions, then
  every eighth of the budget), and interactions_to_90pct_oracle is the first checkpoint
  reaching 0.9 × the oracle's final_return (null if none does).
stderr also gets each method's curve, harmful items and departures separately, and the
interactions to 80% of the oracle.

Run time: about 7 minutes on 2 cores (torch on one thread). Flags --share,
--daily-budget, --kl, --harm-aversion and --distill override ours' settings for studies;
--max-stage 1 keeps ours at stage 1 throughout; --log-steps sets how far into their
sessions the logged contexts may be (default 19: any step a session of at most 20
reaches; 3, the earlier default, keeps them to sessions' first steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit
from training.ml import experts
from training.ml import policy_sim as PS
from training.ml import policy_training as PT
from training.ml.features import pair_features
from training.ml.policy import RecommenderPolicy, ScorerShape, build_slates
from training.ml.reward_model import RewardModelConfig
from training.ml.simulator import (
    EVENT_HARMFUL,
    EVENT_LEFT,
    LEFT_DRIVEN_AWAY,
    TASTES,
    SimConfig,
    Simulator,
)
from training.ml.train_reward import (
    PreferenceData,
    Rejection,
    demonstration_pairs,
    train_reward_model,
)

METHODS = ("random", "popularity", "bc", "scratch", "ours", "oracle")
BUDGET = 16_000  # online interactions (slates shown) per method: four days of DAY
DAY = 4_000  # interactions per day (the exploration budget is per day)
LOGGED = 10_000  # logged impressions of the logging policy (ours' offline data)
LOG_STEPS = 19  # logged contexts: sessions after 0..LOG_STEPS logging steps (every step)
DEMONSTRATIONS = 200  # simulated demonstrations, up to 6 steps each
PAIRS = 4_000  # simulated expert comparisons for the reward model
UPDATES = 4  # critic steps after each round of LANES interactions (scratch and ours)
SCRATCH_GRID = (
    "epsilon=0.02", "epsilon=0.05", "epsilon=0.1", "epsilon=0.2",
    "softmax=0.01", "softmax=0.03", "softmax=0.1",
)  # fmt: skip
EXPLORATION = PT.ExplorationSettings(stage=1, share=0.2, daily_budget=800, top_m=10)
LANES = 64  # sessions served side by side; one round shows LANES slates
EVAL_SESSIONS = 256  # fixed evaluation sessions per checkpoint
# Evaluations during learning (plus one before it), as shares of the budget: dense early,
# where "how soon does it reach 90% of the oracle" is decided, then every eighth.
CHECKPOINTS = (1 / 64, 1 / 32, 1 / 16, 2 / 16, 3 / 16, 2 / 8, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1)
GAMMA = 0.9
DUAL_EVERY = 5  # rounds between dual-ascent steps on λ
OURS_KL = 0.01  # β, chosen over a grid by mean return during learning (docstring)
MAX_STAGE = 2  # the widest exploration stage (policy_training.ExplorationSettings)
MAX_HARMFUL_SHARE = 0.001  # a clean day: harmful items on at most 1 slate in 1,000
N_ITEMS = 1000  # catalog size (the simulator's default is 2000; halved for run time)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the world ------------------------------------------------------------------------------


@dataclass
class World:
    sim: Simulator
    adapter: PS.SimAdapter
    shape: ScorerShape
    k: int
    eval_starts: list
    logged: PT.LoggedBatch
    logged_engine: list
    logged_states: list
    popularity: np.ndarray  # click counts per item in the log


def build_world(seed: int, n_logged: int, tastes: str, log_steps: int = LOG_STEPS) -> World:
    sim = Simulator(SimConfig(n_items=N_ITEMS, tastes=tastes), seed=seed)
    compiled = PS.sim_content_policy(sim)
    adapter = PS.SimAdapter(sim, compiled)
    shape = ScorerShape.from_schema(adapter.schema)
    eval_starts = experts.sample_contexts(
        sim, EVAL_SESSIONS, np.random.default_rng([seed, 11]), experts.ExpertConfig(session_steps=0)
    )
    logged, states, _ = PS.simulate_logged(
        sim, adapter, n_logged, np.random.default_rng([seed, 12]), session_steps=log_steps
    )
    popularity = np.zeros(sim.world.n_items)
    np.add.at(popularity, logged.slates[logged.clicks], 1.0)
    engine = [PS.engine_context(sim, s) for s in states]
    return World(
        sim, adapter, shape, sim.config.slate_size, eval_starts, logged, engine, states, popularity
    )


class Starts:
    """Session starts, the same sequence for every method: returning users at the start of
    a session (``experts.sample_contexts``), drawn in bulk once."""

    def __init__(self, world: World, n: int, seed: int):
        rng = np.random.default_rng([seed, 22])
        config = experts.ExpertConfig(session_steps=0)
        self.states = experts.sample_contexts(world.sim, n, rng, config)
        self.next = 0

    def take(self, n: int) -> list:
        out = [self.states[(self.next + i) % len(self.states)] for i in range(n)]
        self.next += n
        return out


# --- learners ---------------------------------------------------------------------------------


class Learner:
    name = "learner"

    def act(self, batch: PS.SimBatch, rng: np.random.Generator) -> np.ndarray:
        return self.greedy(batch)

    def greedy(self, batch: PS.SimBatch) -> np.ndarray:
        raise NotImplementedError

    def observe(self, batch, slates, clicks, rewards) -> None:
        pass

    def end_of_day(self, day: DayFigures) -> None:
        """The day's monitored figures, after every DAY interactions."""


class RandomLearner(Learner):
    def __init__(self, world: World):
        self.world = world
        self.rng = np.random.default_rng(5)

    def greedy(self, batch):
        zeros = np.zeros(batch.allowed.shape)
        return build_slates(
            zeros, batch.allowed, self.world.k, self.world.adapter.rules, rng=self.rng
        ).items


class PopularityLearner(Learner):
    """Items by click count: the log's, then every click seen while serving."""

    def __init__(self, world: World):
        self.world = world
        self.clicks = world.popularity.copy()

    def greedy(self, batch):
        logits = np.broadcast_to(np.log1p(self.clicks), batch.allowed.shape)
        return build_slates(
            logits, batch.allowed, self.world.k, self.world.adapter.rules, greedy=True
        ).items

    def observe(self, batch, slates, clicks, rewards):
        np.add.at(self.clicks, slates[clicks & (slates >= 0)], 1.0)


class OracleLearner(Learner):
    def __init__(self, world: World):
        self.world = world

    def greedy(self, batch):
        return self.world.adapter.oracle_slates(batch, self.world.k)


class PolicyLearner(Learner):
    """A RecommenderPolicy served greedily (behaviour cloning only: never updated)."""

    def __init__(self, world: World, policy: RecommenderPolicy):
        self.world, self.policy = world, policy

    def greedy(self, batch):
        adapter = self.world.adapter
        return self.policy.slates(
            batch.tensors, adapter.items, batch.allowed, self.world.k, adapter.rules,
            greedy=True, item_penalties=batch.penalties,
        ).items  # fmt: skip


@dataclass(frozen=True)
class ScratchSetting:
    kind: str  # "epsilon" or "softmax"
    value: float  # ε, or the softmax temperature in reward units

    def label(self) -> str:
        return f"{self.kind}={self.value:g}"


class ScratchLearner(PolicyLearner):
    """The same critic network and trainer as ours, from random weights, no demonstrations,
    no reward model, no log: ε-greedy (a uniformly random feasible slate with probability
    ε) or softmax exploration over q̂ / temperature."""

    def __init__(self, world: World, setting: ScratchSetting, config: PT.ImprovementConfig,
                 updates: int, seed: int):  # fmt: skip
        policy = RecommenderPolicy(shape=world.shape, kl_coefficient=1.0)
        super().__init__(world, policy)
        self.setting, self.updates = setting, updates
        critic_config = replace(config.critic, seed=seed)
        self.improver = PT.PolicyImprover(
            policy, world.adapter.items, world.adapter.rules, world.k,
            replace(config, critic=critic_config, distill_weight=0.0),
            n_topics=world.shape.n_topics,
        )  # fmt: skip
        if setting.kind == "softmax":
            policy.kl_coefficient = 1.0
            policy.temperature = setting.value

    def act(self, batch, rng):
        adapter, k = self.world.adapter, self.world.k
        if self.setting.kind == "softmax":
            return self.policy.slates(
                batch.tensors, adapter.items, batch.allowed, k, adapter.rules, rng=rng,
                item_penalties=batch.penalties,
            ).items  # fmt: skip
        slates = self.greedy(batch)
        explore = rng.random(len(slates)) < self.setting.value
        if explore.any():
            rows = np.flatnonzero(explore)
            uniform = build_slates(
                np.zeros((len(rows), batch.allowed.shape[1])), batch.allowed[rows], k,
                adapter.rules, rng=rng,
            ).items  # fmt: skip
            slates[rows] = uniform
        return slates

    def observe(self, batch, slates, clicks, rewards):
        self.improver.observe(batch.contexts, batch.engine, slates, rewards, clicks)
        self.improver.train(self.updates)


class OursLearner(PolicyLearner):
    """Cloned policy + critic pretrained on the log and the reward model, improved online
    (critic updates, dual ascent on λ), serving through staged exploration; the admin
    moves it up a stage after a clean day (``DayFigures.clean``)."""

    def __init__(self, world: World, result: PT.PolicyTrainingResult, settings, updates: int,
                 uncertainty, day_length: int, max_stage: int = MAX_STAGE):  # fmt: skip
        super().__init__(world, result.policy)
        self.max_stage = max_stage
        self.improver, self.settings, self.updates = result.improver, settings, updates
        self.uncertainty = uncertainty
        self.served = 0
        self.explored_today = 0
        self.day_length = day_length

    def act(self, batch, rng):
        adapter = self.world.adapter
        inputs = PT.PolicyInputs(batch.tensors, batch.allowed, batch.penalties, batch.engine)
        day = self.served // self.day_length
        if day != getattr(self, "_day", None):
            self._day, self.explored_today = day, 0
        uncertainty = None
        if self.uncertainty is not None:
            uncertainty = lambda first, cands: self.uncertainty(batch, first, cands)  # noqa: E731
        served = PT.serve_slates(
            self.policy, self.settings, inputs, adapter.items, self.world.k, adapter.rules,
            budget_left=self.settings.daily_budget - self.explored_today, rng=rng,
            uncertainty=uncertainty,
        )  # fmt: skip
        self.explored_today += int(served.explored.sum())
        self.served += len(served.items)
        self.last_explored = served.explored
        return served.items

    def observe(self, batch, slates, clicks, rewards):
        self.improver.observe(batch.contexts, batch.engine, slates, rewards, clicks)
        self.improver.train(self.updates)
        self.rounds = getattr(self, "rounds", 0) + 1
        if self.rounds % DUAL_EVERY == 0:
            self.improver.update_multiplier(greedy=True)

    def end_of_day(self, day):
        if day.clean() and self.settings.stage < self.max_stage:
            self.settings = replace(self.settings, stage=self.settings.stage + 1)
            log(
                f"  after {self.served} interactions, a clean day ({day}): "
                f"stage {self.settings.stage}"
            )


# --- the loop ---------------------------------------------------------------------------------


@dataclass
class DayFigures:
    """What the admin sees of a day of serving beside the stage setting."""

    slates: int = 0
    hard_violations: int = 0
    harmful: int = 0
    driven_away: int = 0

    def count(self, violated: bool, harmful: int, driven_away: bool) -> None:
        """One slate shown, and what it did."""
        self.slates += 1
        self.hard_violations += violated
        self.harmful += harmful
        self.driven_away += driven_away

    def clean(self) -> bool:
        """No hard violation, nobody driven away, harmful items on at most
        MAX_HARMFUL_SHARE of the slates: the admin's condition for a wider stage."""
        return (
            self.hard_violations == 0
            and self.driven_away == 0
            and self.harmful <= MAX_HARMFUL_SHARE * self.slates
        )


@dataclass
class Curve:
    interactions: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    bad_experiences: int  # harmful items shown + users driven away
    harmful: int
    driven_away: int
    left: int  # every departure, driven away or not
    regret: float
    hard_violations: int
    curve: Curve
    seconds: float


def evaluation_steps(world: World, learner: Learner, seed: int = 99):
    """Walks the fixed evaluation sessions with the learner's greedy slates (sampled clicks
    and leaving drive them): yields (t, the running sessions' rows, their batch, slates)
    at every step, before the step is taken."""
    sim, adapter = world.sim, world.adapter
    rng = np.random.default_rng(seed)
    states = list(world.eval_starts)
    alive = np.ones(len(states), dtype=bool)
    for t in range(sim.config.horizon):
        rows = np.flatnonzero(alive)
        if not len(rows):
            break
        batch = adapter.batch([states[i] for i in rows])
        slates = learner.greedy(batch)
        yield t, rows, batch, slates
        for j, i in enumerate(rows):
            result = sim.step(states[i], slates[j][slates[j] >= 0], rng)
            states[i] = result.state
            alive[i] = not result.state.left


def evaluate(world: World, learner: Learner, seed: int = 99) -> float:
    """Mean discounted return Σ_t γ^t E[r_t] of the learner's greedy policy over the fixed
    evaluation sessions (expected rewards, ``evaluation_steps``)."""
    returns = np.zeros(len(world.eval_starts))
    for t, rows, batch, slates in evaluation_steps(world, learner, seed):
        returns[rows] += GAMMA**t * PS.expected_rewards(world.sim, batch.states, slates)
    return float(returns.mean())


def run(world: World, learner: Learner, budget: int, seed: int) -> RunResult:
    sim, adapter, k = world.sim, world.adapter, world.k
    rng = np.random.default_rng([seed, 21])
    starts = Starts(world, LANES + budget // 8, seed)
    lanes = starts.take(LANES)
    marks = [round(share * budget) for share in CHECKPOINTS]
    curve = Curve([0], [evaluate(world, learner)])
    harmful = driven_away = left = violations = harmful_explored = 0
    today = DayFigures()
    regret = 0.0
    served = 0
    started = time.perf_counter()
    while served < budget:
        batch = adapter.batch(lanes)
        slates = learner.act(batch, rng)
        oracle = adapter.oracle_slates(batch, k)
        regret += float(
            (
                PS.expected_rewards(sim, lanes, oracle) - PS.expected_rewards(sim, lanes, slates)
            ).sum()
        )
        clicks = np.zeros(slates.shape, dtype=bool)
        rewards = np.zeros(len(lanes))
        restart = []
        for i, state in enumerate(lanes):
            slate = slates[i][slates[i] >= 0]
            violated = bool(adapter.compiled.violations(batch.engine[i], slate))
            violations += violated
            result = sim.step(state, slate, rng)
            clicks[i, list(result.clicks)] = True
            rewards[i] = result.reward
            harmed = sum(1 for event, _ in result.events if event == EVENT_HARMFUL)
            harmful += harmed
            explored = getattr(learner, "last_explored", None)
            if explored is not None and explored[i]:
                harmful_explored += harmed
            left += sum(1 for event, _ in result.events if event == EVENT_LEFT)
            pushed = (EVENT_LEFT, LEFT_DRIVEN_AWAY) in result.events
            driven_away += pushed
            today.count(violated, harmed, pushed)
            lanes[i] = result.state
            if result.state.left:
                restart.append(i)
        learner.observe(batch, slates, clicks, rewards)
        if restart:
            for i, state in zip(restart, starts.take(len(restart)), strict=True):
                lanes[i] = state
        before = served
        served += len(lanes)
        if served // DAY > before // DAY:
            learner.end_of_day(today)
            today = DayFigures()
        if any(before < mark <= served for mark in marks) or served >= budget:
            curve.interactions.append(served)
            curve.returns.append(evaluate(world, learner))
    if harmful_explored:
        log(f"  harmful items on exploring slates: {harmful_explored} of {harmful}")
    return RunResult(
        harmful + driven_away, harmful, driven_away, left, regret, violations, curve,
        time.perf_counter() - started,
    )  # fmt: skip


def mean_return_during_learning(curve: Curve) -> float:
    """The area under the learning curve over the budget (trapezoids between checkpoints),
    divided by the budget: speed and level together, whatever the checkpoints' spacing."""
    x = np.asarray(curve.interactions, dtype=float)
    y = np.asarray(curve.returns)
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))


def interactions_to(curve: Curve, target: float) -> int | None:
    for n, value in zip(curve.interactions, curve.returns, strict=True):
        if value >= target:
            return n
    return None


# --- ours: demonstrations, reward model, offline improvement ------------------------------------


def train_ours(world: World, seed: int, config: PT.ImprovementConfig, n_demos: int,
               n_pairs: int):  # fmt: skip
    sim, adapter = world.sim, world.adapter
    t = time.perf_counter()
    demos, demo_states = PS.simulate_demonstrations(
        sim, adapter, n_demos, np.random.default_rng([seed, 31]),
        PS.DemonstratorConfig(steps=6),
    )  # fmt: skip
    log(f"  {len(demos)} demonstration steps ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    scorer = train_reward_scorer(world, seed, demos, demo_states, n_pairs)
    log(f"  reward model ({time.perf_counter() - t:.0f} s)")

    def input_builder(contexts, engine):
        return PT.policy_inputs(
            adapter.compiled, adapter.rules, contexts, engine, adapter.n_segments
        )

    t = time.perf_counter()
    result = PT.train_policy(
        shape=world.shape, items=adapter.items, rules=adapter.rules, k=world.k,
        demonstrations=demos, logged=world.logged, logged_engine=world.logged_engine,
        reward_scorer=scorer, input_builder=input_builder, config=config,
    )  # fmt: skip
    log(
        f"  bc {result.bc.epochs} epochs, offline improvement; λ = {result.policy.multiplier:.3f},"
        f" E[penalty] = {result.penalties[-1]:.3f} ({time.perf_counter() - t:.0f} s)"
    )
    return result, scorer


def train_reward_scorer(world: World, seed: int, demos, demo_states, n_pairs: int):
    sim = world.sim
    pairs = experts.sample_pairs(sim, n_pairs, np.random.default_rng([seed, 41]))
    featurize = experts.Featurizer(sim)
    x_a, x_b = featurize(pairs)
    criteria = pairs.criteria
    data = PreferenceData(x_a, x_b, torch.from_numpy(pairs.outcomes), torch.ones(len(pairs)),
                          criteria)  # fmt: skip
    # The demonstrations' rejections as pairs (chosen ≻ chosen with the rejected swapped in).
    rows_a, rows_b, outcomes, weights, context_rows = [], [], [], [], []
    for s in range(len(demos)):
        chosen = demos.chosen[s][demos.chosen[s] >= 0]
        rejections = [
            Rejection(int(item), PT.REJECT_REASONS[int(reason)])
            for item, reason in zip(demos.rejected[s], demos.reasons[s], strict=True)
            if item >= 0
        ]
        a, b, o = demonstration_pairs(chosen, rejections, criteria)
        rows_a.extend(a)
        rows_b.extend(b)
        outcomes.extend(o)
        weights.extend([float(demos.weights[s])] * len(a))
        context_rows.extend([s] * len(a))
    if rows_a:
        contexts = demos.contexts.take(np.asarray(context_rows))
        d_a, d_b = _pair_features(world, contexts, np.stack(rows_a), np.stack(rows_b))
        data = PreferenceData(
            torch.cat([data.features_a, d_a]), torch.cat([data.features_b, d_b]),
            torch.cat([data.outcomes, torch.from_numpy(np.stack(outcomes))]),
            torch.cat([data.weights, torch.tensor(weights, dtype=torch.float32)]), criteria,
        )  # fmt: skip
    model = train_reward_model(RewardModelConfig(seed=seed), data).model
    return PT.RewardScorer(model, world.adapter.schema, world.adapter.catalog)


def _pair_features(world, contexts, slates_a, slates_b):
    return pair_features(world.adapter.schema, world.adapter.catalog, contexts, slates_a, slates_b)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tastes", choices=TASTES, default="segment")
    parser.add_argument("--logged", type=int, default=LOGGED)
    parser.add_argument("--log-steps", type=int, default=LOG_STEPS)
    parser.add_argument("--demos", type=int, default=DEMONSTRATIONS)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--updates", type=int, default=UPDATES)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--grid", default=",".join(SCRATCH_GRID))
    parser.add_argument("--share", type=float, default=EXPLORATION.share)
    parser.add_argument("--daily-budget", type=int, default=EXPLORATION.daily_budget)
    parser.add_argument("--kl", type=float, default=OURS_KL)
    parser.add_argument("--max-stage", type=int, choices=(1, 2), default=MAX_STAGE)
    parser.add_argument("--harm-aversion", type=float, default=PT.ImprovementConfig.harm_aversion)
    parser.add_argument("--distill", type=float, default=PT.ImprovementConfig.distill_weight)
    args = parser.parse_args()
    if args.log_steps < 0:
        parser.error(f"--log-steps: expected ≥ 0, got {args.log_steps}")
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # on 2 shared cores, more threads only contend
    started = time.perf_counter()
    world = build_world(args.seed, args.logged, args.tastes, args.log_steps)
    log(f"world ready ({time.perf_counter() - started:.0f} s)")
    config = PT.ImprovementConfig(
        kl_coefficient=args.kl, harm_aversion=args.harm_aversion, distill_weight=args.distill
    )
    methods = args.methods.split(",")
    results: dict[str, RunResult] = {}
    # The oracle always runs: every ratio is to its final return.
    results["oracle"] = run(world, OracleLearner(world), args.budget, args.seed)
    log(f"oracle: {results['oracle'].curve.returns[-1]:.3f}")
    for name, make in (("random", RandomLearner), ("popularity", PopularityLearner)):
        if name in methods:
            results[name] = run(world, make(world), args.budget, args.seed)
            log(f"{name}: {np.round(results[name].curve.returns, 2).tolist()}")
    if "bc" in methods or "ours" in methods:
        log("ours: demonstrations, reward model, offline improvement")
        trained, scorer = train_ours(world, args.seed, config, args.demos, args.pairs)
        if "bc" in methods:
            bc_policy = RecommenderPolicy(shape=world.shape, cloned=trained.policy.cloned)
            results["bc"] = run(world, PolicyLearner(world, bc_policy), args.budget, args.seed)
            log(f"bc: {np.round(results['bc'].curve.returns, 2).tolist()}")
        if "ours" in methods:

            def uncertainty(batch, first, candidates):
                return PT.item_uncertainty(scorer, batch.contexts, first, candidates)

            exploration = replace(EXPLORATION, share=args.share, daily_budget=args.daily_budget)
            learner = OursLearner(
                world, trained, exploration, args.updates, uncertainty, DAY, args.max_stage
            )
            results["ours"] = run(world, learner, args.budget, args.seed)
            log(
                f"ours: {np.round(results['ours'].curve.returns, 2).tolist()}, "
                f"λ = {trained.policy.multiplier:.3f} ({results['ours'].seconds:.0f} s)"
            )
    if "scratch" in methods:
        best = None
        for item in args.grid.split(","):
            kind, value = item.split("=")
            setting = ScratchSetting(kind, float(value))
            learner = ScratchLearner(world, setting, config, args.updates, args.seed)
            result = run(world, learner, args.budget, args.seed)
            area = mean_return_during_learning(result.curve)
            log(
                f"scratch {setting.label()}: mean return during learning {area:.3f}, "
                f"bad experiences {result.bad_experiences}, "
                f"curve {np.round(result.curve.returns, 2).tolist()} ({result.seconds:.0f} s)"
            )
            if best is None or area > best[0]:
                best = (area, setting, result)
        results["scratch"] = best[2]
        log(f"scratch: best setting {best[1].label()}")
    oracle = results["oracle"].curve.returns[-1]
    summary = {}
    for name in METHODS:
        if name not in results:
            continue
        r = results[name]
        final = r.curve.returns[-1]
        summary[name] = {
            "bad_experiences": r.bad_experiences,
            "regret": round(r.regret, 2),
            "hard_violations": r.hard_violations,
            "final_return": round(final, 4),
            "return_ratio_to_oracle": round(final / oracle, 4),
            "interactions_to_90pct_oracle": interactions_to(r.curve, 0.9 * oracle),
        }
    details = {
        name: {
            "harmful_items": r.harmful,
            "users_driven_away": r.driven_away,
            "users_left": r.left,
            "interactions_to_80pct_oracle": interactions_to(r.curve, 0.8 * oracle),
            "curve": [round(v, 3) for v in r.curve.returns],
        }
        for name, r in results.items()
    }
    log(json.dumps(details))
    log(f"checkpoints at {results['oracle'].curve.interactions} interactions")
    log(f"total {time.perf_counter() - started:.0f} s")
    emit(summary)


if __name__ == "__main__":
    main()
