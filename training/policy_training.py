"""One policy training run, end to end, as the Celery task runs it: read demonstrations,
logged interactions and replay contexts; clone the experts, then improve conservatively
against the promoted reward model and the logged rewards under the content policy; evaluate
the candidate and the promoted policy on the same held-out demonstrations and logs; write
the artifact atomically and register it (the policy gate decides). The learning itself is
``training/ml/policy_training.py``; this module feeds it from the database.
"""

import time
from dataclasses import replace
from pathlib import Path

from governance.selectors import policy_version_in_force
from training import registry, runs
from training.datasets import FeatureSpace, feature_space
from training.execution import NotEnoughData, json_safe, progress, run_execute
from training.ml.policy import (
    ItemTensors,
    RecommenderPolicy,
    ScorerShape,
    SlateRules,
    load_policy,
    save_policy,
)
from training.ml.policy_training import (
    BCConfig,
    ImprovementConfig,
    RewardScorer,
    policy_inputs,
    train_policy,
)
from training.ml.simulator import SimConfig
from training.models import ModelKind, TrainingRun
from training.policy_data import PolicyData, policy_data
from training.policy_evaluation import Evaluated, evaluate_policy
from training.selectors import promoted_reward_model

SLATE_SIZE = SimConfig.slate_size  # the slates reviewers see and the queue shows
MIN_TRAINING_STEPS = 20  # fewer demonstration steps than this teach nothing worth registering
CURVE_POINTS_KEPT = 200


def run_policy_training(run_id: int) -> str:
    """Train the policy for a queued run; what happened, in a word."""
    return run_execute(run_id, _train)


def _train(run: TrainingRun, heartbeat: runs.Heartbeat, artifact: Path) -> None:
    progress(run, stage="reading data")
    space = feature_space()
    if space.policy is None:
        raise NotEnoughData("no content policy is in force: publish one before training")
    data = policy_data(space, k=SLATE_SIZE, seed=run.pk)
    runs.run_record_dataset(run, dataset_hash=data.dataset_hash, label_counts=data.label_counts)
    if len(data.train) < MIN_TRAINING_STEPS:
        raise NotEnoughData(
            f"{len(data.train)} demonstration steps to train on: at least "
            f"{MIN_TRAINING_STEPS} are needed"
        )
    started = time.monotonic()
    trained, config, curves = _fit(run, space, data)
    progress(run, stage="evaluating", curves=curves)
    evaluated = Evaluated(policy=trained, space=space, k=SLATE_SIZE)
    metrics = evaluate_policy(evaluated, data, seed=run.pk)
    _compare_with_promoted(metrics, space, data, seed=run.pk)
    metrics["curves"] = curves
    metrics["penalty_budget"] = config.penalty_budget
    metrics["training"] = {
        "demonstration_steps": len(data.train),
        "logged_interactions": data.label_counts["logged_interactions"],
        "replay_contexts": len(data.replay_states),
        "reward_model": run.config.get("reward_model_version"),
        "kl_coefficient": config.kl_coefficient,
        "multiplier": trained.multiplier,
        "seconds": round(time.monotonic() - started, 2),
    }
    progress(run, stage="saving", curves=curves)
    sha256 = save_policy(artifact, trained, space.schema, BCConfig().hidden)
    registry.model_register(
        run=run, artifact=artifact, sha256=sha256,
        feature_schema=space.schema_record(), metrics=json_safe(metrics),
        guideline_versions=data.guideline_versions, policy_version=policy_version_in_force(),
    )  # fmt: skip


def _fit(run: TrainingRun, space: FeatureSpace, data: PolicyData):
    """Behaviour cloning, then the improvement; the curves the run page draws."""
    settings_ = runs.training_settings()
    config = replace(
        ImprovementConfig(),
        kl_coefficient=settings_.kl_coefficient,
        penalty_budget=settings_.penalty_budget,
        offline_steps=settings_.policy_critic_steps,
    )
    items = ItemTensors.from_catalog(space.catalog)
    rules = SlateRules.from_compiled(space.policy)
    shape = ScorerShape.from_schema(space.schema)
    scorer = _reward_scorer(run, space)
    curves: dict[str, list[list[float]]] = {}

    def on_step(phase: str, step: int, loss: float) -> None:
        points = curves.setdefault(phase, [])
        points.append([step, round(float(loss), 5)])
        del points[:-CURVE_POINTS_KEPT]
        progress(run, stage=f"training: {phase}", curves=curves)

    def inputs(contexts, engine):
        return policy_inputs(space.policy, rules, contexts, engine, shape.n_segments)

    result = train_policy(
        shape=shape, items=items, rules=rules, k=SLATE_SIZE,
        demonstrations=data.train.steps, logged=data.logged, logged_engine=data.logged_engine,
        reward_scorer=scorer, input_builder=inputs, config=config, logger=on_step,
    )  # fmt: skip
    if result.penalties:
        curves["expected penalty"] = [[i, p] for i, p in enumerate(result.penalties)]
        curves["multiplier λ"] = [[i, m] for i, m in enumerate(result.improver.multipliers)]
    return result.policy, config, json_safe(curves)


def _reward_scorer(run: TrainingRun, space: FeatureSpace) -> RewardScorer | None:
    """The promoted reward model's utility, when there is one trained on this vocabulary
    (without it the policy improves on the logged rewards alone)."""
    promoted = promoted_reward_model()
    if promoted is None:
        return None
    version, model, _ = promoted
    run.config = {**run.config, "reward_model_version": version.version}
    TrainingRun.objects.filter(pk=run.pk).update(config=run.config)
    return RewardScorer(model, space.schema, space.catalog, space.policy)


def _compare_with_promoted(metrics: dict, space: FeatureSpace, data: PolicyData, *, seed: int):
    """Score the promoted policy on the same held-out demonstrations and logs, so the gate
    compares like with like. A promoted policy the current catalog no longer fits cannot be
    scored: the gate then says so and refuses."""
    promoted = registry.promoted_version(ModelKind.POLICY)
    if promoted is None:
        return
    baseline = {"version": promoted.version}
    try:
        policy = loaded_policy(promoted, space)
    except (ValueError, OSError) as error:
        baseline["error"] = str(error)
    else:
        scored = evaluate_policy(
            Evaluated(policy=policy, space=space, k=SLATE_SIZE), data, seed=seed, brief=True
        )
        baseline["hit_at_k"] = scored.get("hit_at_k")
        baseline["ope_dr"] = (scored.get("ope") or {}).get("dr", {}).get("estimate")
    metrics["promoted"] = baseline


def loaded_policy(version, space: FeatureSpace | None = None) -> RecommenderPolicy:
    """A registered policy from its artifact, checked against the catalog's feature space
    (the current one unless given)."""
    space = space or feature_space()
    space.check_model(version.feature_schema)
    return load_policy(
        registry.model_store() / version.artifact_path,
        sha256=version.artifact_sha256, schema=space.schema,
    )  # fmt: skip
