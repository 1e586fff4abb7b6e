"""The evaluation of a policy, as its report page and the policy gate read it:

- held-out demonstrations: hit@k and NDCG@k of the policy's ranking of the candidates the
  expert was shown, against the expert's choice and order;
- off-policy estimates on the logged interactions (``training.logged_ope``);
- the policy's greedy slates on held-out and replay contexts: the hard-rule violation rate
  (must be 0), the mean soft penalty, intra-list diversity, catalog coverage, novelty, and
  per segment the exposure of topics and sources.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from catalog.models import LoggedInteraction
from training import runs
from training.datasets import FeatureSpace
from training.logged_ope import SliceError, logged_slice, ope_report
from training.ml.policy import ItemTensors, RecommenderPolicy, ScorerShape, SlateRules
from training.ml.policy_training import (
    PolicyInputs,
    catalog_coverage,
    exposure_by_segment,
    hard_violation_rate,
    hit_at_k,
    intra_list_diversity,
    mean_soft_penalty,
    ndcg_at_k,
    novelty,
    policy_inputs,
    ranked_items,
    target_pscores,
)
from training.policy_data import Demonstrations, PolicyData

SLATE_CONTEXTS = 1_000  # contexts whose greedy slates are checked and described
OPE_ROWS = 20_000


@dataclass
class Evaluated:
    """A policy with what it needs to build slates in the current catalog."""

    policy: RecommenderPolicy
    space: FeatureSpace
    k: int

    @cached_property
    def items(self) -> ItemTensors:
        return ItemTensors.from_catalog(self.space.catalog)

    @cached_property
    def rules(self) -> SlateRules:
        return SlateRules.from_compiled(self.space.policy)

    @cached_property
    def shape(self) -> ScorerShape:
        return ScorerShape.from_schema(self.space.schema)

    def inputs(self, states: list[dict]) -> PolicyInputs:
        engine = [self.space.engine_context(state) for state in states]
        return policy_inputs(
            self.space.policy, self.rules, self.space.contexts(states), engine,
            self.shape.n_segments,
        )  # fmt: skip

    def greedy(self, inputs: PolicyInputs) -> np.ndarray:
        return self.policy.slates(
            inputs.contexts, self.items, inputs.allowed, self.k, self.rules, greedy=True,
            item_penalties=inputs.penalties,
        ).items  # fmt: skip

    def sampler(self, seed: int):
        """target_slates(states, m) for OPE: m slates per state from the stochastic policy."""
        rng = np.random.default_rng(seed)

        def draw(states: list[dict], m: int) -> np.ndarray:
            inputs = self.inputs(states)
            logits = self.policy.logits(inputs.contexts, self.items)
            draws = [
                self.policy.slates(
                    inputs.contexts, self.items, inputs.allowed, self.k, self.rules,
                    item_penalties=inputs.penalties, rng=rng, logits=logits,
                ).items
                for _ in range(m)
            ]  # fmt: skip
            return np.stack(draws, axis=1)

        return draw


def evaluate_policy(
    evaluated: Evaluated, data: PolicyData, *, seed: int, brief: bool = False
) -> dict:
    """The report's figures. ``brief``: only what the gate compares (hit@k and OPE)."""
    k = runs.training_settings().hit_k
    metrics: dict = {"k": k, "heldout_steps": len(data.heldout)}
    metrics.update(_heldout_ranking(evaluated, data.heldout, k))
    try:
        metrics["ope"] = policy_ope(evaluated, seed=seed)
    except SliceError as error:
        metrics["ope_error"] = str(error)
    if not brief:
        states = data.heldout.states + data.replay_states
        metrics.update(_slate_figures(evaluated, states[:SLATE_CONTEXTS]))
    return metrics


def _heldout_ranking(evaluated: Evaluated, heldout: Demonstrations, k: int) -> dict:
    """hit@k and NDCG@k of the policy's order of each step's shown candidates."""
    if not len(heldout):
        return {"hit_at_k": None, "ndcg": None}
    inputs = evaluated.inputs(heldout.states)
    logits = evaluated.policy.logits(inputs.contexts, evaluated.items)
    shown = np.zeros_like(inputs.allowed)
    candidates = heldout.steps.candidates
    rows = np.repeat(np.arange(len(candidates)), candidates.shape[1])
    valid = candidates.reshape(-1) >= 0
    shown[rows[valid], candidates.reshape(-1)[valid]] = True
    ranked = ranked_items(logits, shown, max(k, candidates.shape[1]))
    chosen = heldout.steps.chosen
    return {"hit_at_k": hit_at_k(ranked, chosen, k), "ndcg": ndcg_at_k(ranked, chosen, k)}


def policy_ope(
    evaluated: Evaluated,
    *,
    seed: int,
    n_boot: int = 1000,
    logging_policy: str | None = None,
    since=None,
    until=None,
    segment: str | None = None,
    limit: int = OPE_ROWS,
) -> dict:
    """The policy's off-policy estimates on a slice of the logged interactions."""
    data = logged_slice(
        evaluated.space, logging_policy=logging_policy, since=since, until=until,
        segment=segment, limit=limit,
    )  # fmt: skip
    if not len(data):
        raise SliceError("no logged interactions in the slice")
    inputs = evaluated.inputs(data.states)
    target = target_pscores(
        evaluated.policy, inputs, evaluated.items, evaluated.k, evaluated.rules, data.slates
    )
    return ope_report(
        evaluated.space, data, target_pscore=target, target_slates=evaluated.sampler(seed),
        n_boot=n_boot, seed=seed,
    )  # fmt: skip


def _slate_figures(evaluated: Evaluated, states: list[dict]) -> dict:
    if not states:
        return {"hard_violations": 0, "slates_checked": 0}
    space = evaluated.space
    inputs = evaluated.inputs(states)
    slates = evaluated.greedy(inputs)
    engine = list(inputs.engine)
    violations = hard_violation_rate(space.policy, engine, slates)
    return {
        "slates_checked": len(slates),
        "hard_violations": round(violations * len(slates)),
        "hard_violation_rate": violations,
        "soft_penalty": mean_soft_penalty(space.policy, engine, slates),
        "diversity": intra_list_diversity(space.catalog.unit_vectors(), slates),
        "coverage": catalog_coverage(slates, evaluated.items.n_items),
        "novelty": novelty(slates, _popularity(space)),
        "segments": _exposure(space, states, slates, engine),
    }


def _popularity(space: FeatureSpace) -> np.ndarray:
    """Times each catalog item was shown in the newest logged interactions."""
    counts = np.zeros(len(space.item_pks))
    for slate in LoggedInteraction.objects.order_by("-pk").values_list("slate", flat=True)[
        :OPE_ROWS
    ]:
        for pk in slate:
            position = space.position_of_pk.get(pk)
            if position is not None:
                counts[position] += 1
    return counts


def _exposure(space: FeatureSpace, states, slates: np.ndarray, engine) -> dict:
    names = sorted({state["segment"] for state in states})
    index = {name: i for i, name in enumerate(names)}
    segments = np.array([index[state["segment"]] for state in states], dtype=np.int64)
    vocabulary = space.vocabulary
    n_topics = len(vocabulary.topics)  # items without a topic count under one more label
    primary = np.where(space.topic_of_position >= 0, space.topic_of_position, n_topics)
    topics = exposure_by_segment(slates, segments, primary, n_topics + 1, len(names))
    sources = exposure_by_segment(
        slates, segments, space.catalog.item_source, len(vocabulary.sources), len(names)
    )
    report = {}
    for name, row in index.items():
        mine = segments == row
        report[name] = {
            "slates": int(mine.sum()),
            "penalty": mean_soft_penalty(
                space.policy, [e for e, m in zip(engine, mine, strict=True) if m], slates[mine]
            ),
            "topics": _shares([*vocabulary.topics, "(no topic)"], topics[row]),
            "sources": _shares(vocabulary.sources, sources[row]),
        }
    return report


def _shares(names, values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(names, values, strict=True) if v > 0}
