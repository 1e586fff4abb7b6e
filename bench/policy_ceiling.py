"""What the policy's critic can represent in bench/policy.py's world, apart from learning.

    python bench/policy_ceiling.py [--seed 0] [--steps 4000] [--hidden 32]
                                   [--exposure product,fatigue]

The critic (ValueCritic, the width ours and scratch use) is fit on the simulator's exact
one-step quantities for every item of every context: the click probability σ(ℓ_i) on the
click head and λ_harm h_i on the harm head (squared errors; the users' harm tolerance stays
hidden, as in the bench). No clicks are sampled, so nothing limits the fit but the network
and the features it sees. Training contexts: 600 sessions of returning users (the bench's
session starts, another seed) served by the oracle for up to 20 steps. Then the critic's
greedy policy (harm aversion ν = 2, β = 0.01, as ours serves) runs the bench's 256
evaluation sessions, and the figure is its mean discounted return as a share of the
oracle's: the most a learner with this critic could reach from clicks.

--exposure chooses what the context's recent_exposure holds (its topic array feeds the
critic's history directions, alone and × the fatigue summary):
- product: as the product computes it (features.history_summaries): the last 200 history
  entries replayed as slates of 5, each entry weighed by the examination weight of its
  place in its slate and each slate 0.7 × the next, earlier sessions included (before
  "reward-features/3" every entry weighed 0.93 × the next: BENCHMARKS.md has both;
  commit 981dc51 measures that one, and the same over the current session only);
- fatigue: the simulator's hidden per-topic fatigue f itself, the quantity in the click
  logit (−c_fatigue z_i · f): the product's formula over the current session only, which
  the product cannot compute (its history does not mark where a session began).

Prints per exposure and checkpoint the return ratio to the oracle, and the ratio per step of
the evaluation sessions (each step's expected reward against the oracle's slate in the
same state); one JSON line last, keyed by exposure.
Run time: about 2 minutes per exposure at 4,000 steps (torch on one thread); the seed
sets the world (as in bench/policy.py), the training sessions and the initial weights.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import policy as B
from bench.common import emit
from training.ml import policy_sim as PS
from training.ml.policy import RecommenderPolicy, ValueCritic
from training.ml.simulator import sigmoid

EXPOSURES = ("product", "fatigue")
TRAINING_SESSIONS = 600
BATCH = 64  # contexts per step (every item of each)
LR = 3e-3


class ExposureAdapter(PS.SimAdapter):
    """The bench's adapter with recent_exposure replaced as --exposure says."""

    def __init__(self, base: PS.SimAdapter, exposure: str):
        super().__init__(base.sim, base.compiled)
        self.exposure = exposure

    def contexts(self, states):
        contexts = super().contexts(states)
        if self.exposure == "fatigue":
            contexts.recent_exposure[:] = np.stack([s.fatigue for s in states])
        return contexts


def oracle_sessions(world: B.World, seed: int) -> list:
    """The states of TRAINING_SESSIONS sessions served by the oracle."""
    sim, adapter = world.sim, world.adapter
    rng = np.random.default_rng([seed, 51])
    states = []
    for state in B.Starts(world, TRAINING_SESSIONS, seed + 100).take(TRAINING_SESSIONS):
        for _ in range(sim.config.horizon):
            states.append(state)
            slate = adapter.oracle_slates(adapter.batch([state]), world.k)[0]
            result = sim.step(state, slate[slate >= 0], rng)
            if result.state.left:
                break
            state = result.state
    return states


def ratio_per_step(world: B.World, learner: B.Learner) -> list[float]:
    """Per evaluation step: Σ E[r | the learner's slate] / Σ E[r | the oracle's slate] over
    the sessions still running, in the states the learner's own slates led to."""
    sim, adapter = world.sim, world.adapter
    ratios = []
    for _, _, batch, slates in B.evaluation_steps(world, learner):
        best = PS.expected_rewards(sim, batch.states, adapter.oracle_slates(batch, world.k))
        ratios.append(float(PS.expected_rewards(sim, batch.states, slates).sum() / best.sum()))
    return ratios


def fit_ceiling(world: B.World, states: list, steps: int, hidden: int, seed: int, oracle: float):
    sim, adapter = world.sim, world.adapter
    batch = adapter.batch(states)
    click = torch.tensor(
        np.stack([sigmoid(sim.click_logits(s)) for s in states]), dtype=torch.float32
    )
    harm = torch.tensor(
        np.stack([sim.config.harm_weight * sim.harm(s.user) for s in states]), dtype=torch.float32
    )
    torch.manual_seed(seed)
    critic = ValueCritic(world.shape, hidden)
    optimizer = torch.optim.Adam(critic.parameters(), lr=LR)
    policy = RecommenderPolicy(
        shape=world.shape, critic=critic, kl_coefficient=B.OURS_KL, harm_aversion=2.0
    )
    rng = np.random.default_rng([seed, 52])
    marks = {steps // 4, steps // 2, steps}
    curve = {}
    for step in range(1, steps + 1):
        rows = rng.choice(len(states), BATCH)
        critic.train()
        click_logit, harm_cost = critic.heads(batch.tensors.take(rows), adapter.items)
        loss = ((torch.sigmoid(click_logit) - click[rows]) ** 2).mean() + (
            (harm_cost - harm[rows]) ** 2
        ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in marks:
            critic.eval()
            curve[step] = B.evaluate(world, B.PolicyLearner(world, policy)) / oracle
            B.log(f"  {step} steps: {curve[step]:.3f} of the oracle")
    return curve, ratio_per_step(world, B.PolicyLearner(world, policy))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--hidden", type=int, default=B.PT.CriticConfig.hidden)
    parser.add_argument("--exposure", default=",".join(EXPOSURES))
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps: expected ≥ 1, got {args.steps}")
    for name in args.exposure.split(","):
        if name not in EXPOSURES:
            parser.error(f"--exposure: {name!r} is not one of {', '.join(EXPOSURES)}")
    torch.set_num_threads(1)
    base = B.build_world(args.seed, 100, "segment")
    oracle = B.evaluate(base, B.OracleLearner(base))
    summary = {}
    for name in args.exposure.split(","):
        world = replace(base, adapter=ExposureAdapter(base.adapter, name))
        B.log(f"exposure {name}:")
        states = oracle_sessions(world, args.seed)
        curve, per_step = fit_ceiling(world, states, args.steps, args.hidden, args.seed, oracle)
        B.log(f"  per step: {np.round(per_step, 2).tolist()}")
        summary[name] = {
            "return_ratio_to_oracle": round(curve[args.steps], 4),
            "by_steps": {str(k): round(v, 4) for k, v in sorted(curve.items())},
            "step_ratio_first": round(per_step[0], 4),
            "step_ratio_later_mean": round(float(np.mean(per_step[1:])), 4),
        }
    emit(summary)


if __name__ == "__main__":
    main()
