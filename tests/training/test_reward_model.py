"""The reward model (training/ml/reward_model.py, train_reward.py): shapes, one optimisation
step, independent members, agreement with an independent maximum-likelihood fit, a tiny run
that learns a known utility, ensemble spread out of distribution, the veto rule and
checkpoints."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from training.ml.experts import bayes_optimal_accuracy, davidson_probabilities, expected_accuracy
from training.ml.features import FeatureSchema
from training.ml.losses import davidson_log_likelihood
from training.ml.reward_model import (
    CheckpointError,
    RewardModel,
    RewardModelConfig,
    load_checkpoint,
    save_checkpoint,
)
from training.ml.train_reward import (
    PreferenceData,
    member_log_likelihood,
    predict_probabilities,
    train_reward_model,
)

CRITERIA = ("safety", "relevance", "diversity", "overall")
SCHEMA = FeatureSchema(n_topics=3, n_sources=2, n_segments=2, item_dim=2, max_slate_size=3)
SMALL = RewardModelConfig(criteria=CRITERIA, hidden_sizes=(16, 16), members=3, epochs=30)


def synthetic_pairs(n: int, seed: int, dim: int = 6, shift: float = 0.0):
    """Pairs of feature rows judged on two criteria whose true utilities are known:
    u_first = 2 x0 − x1² + x2 and u_second = 2 sin(2 x3) + x4 (x5 is noise), with ties
    (ν = 0.5). Returns x_a, x_b, true probabilities float[n, 2, 3] and sampled outcomes."""
    rng = np.random.default_rng(seed)
    x_a = rng.normal(size=(n, dim)) + shift
    x_b = rng.normal(size=(n, dim)) + shift

    def utilities(x):
        return np.stack(
            [2 * x[:, 0] - x[:, 1] ** 2 + x[:, 2], 2 * np.sin(2 * x[:, 3]) + x[:, 4]], 1
        )

    probabilities = davidson_probabilities(utilities(x_a) - utilities(x_b), 0.5)
    draws = rng.random((n, 2))[..., None] > probabilities.cumsum(axis=-1)
    outcomes = np.minimum(draws.sum(axis=-1), 2).astype(np.int8)
    return (
        torch.tensor(x_a, dtype=torch.float32),
        torch.tensor(x_b, dtype=torch.float32),
        probabilities,
        outcomes,
    )


def preference_data(x_a, x_b, outcomes, criteria=("first", "second")) -> PreferenceData:
    return PreferenceData(x_a, x_b, torch.from_numpy(outcomes), torch.ones(len(x_a)), criteria)


TWO = RewardModelConfig(
    criteria=("first", "second"),
    overall_criterion="second",
    veto_criterion=None,
    hidden_sizes=(32, 32),
    members=5,
    weight_decay=0.01,  # 6 raw inputs need far less shrinkage than the 333 slate features
)


@pytest.fixture(scope="module")
def learned():
    """A tiny run on 4,000 synthetic pairs, and 2,000 fresh pairs to judge it on."""
    x_a, x_b, _, outcomes = synthetic_pairs(4000, seed=0)
    result = train_reward_model(TWO, preference_data(x_a, x_b, outcomes))
    heldout = synthetic_pairs(2000, seed=1)
    return result, heldout


# --- shapes and the API -----------------------------------------------------------------------


def test_utilities_probabilities_and_spread_have_the_documented_shapes():
    model = RewardModel(SMALL, input_dim=7)
    x_a, x_b = torch.randn(11, 7), torch.randn(11, 7)
    assert model.utilities(x_a).shape == (3, 11, 4)
    preferred = model.prob_prefer(x_a, x_b)
    assert list(preferred) == list(CRITERIA)
    for p_a, p_b, p_tie in preferred.values():
        assert p_a.shape == p_b.shape == p_tie.shape == (11,)
        assert torch.allclose(p_a + p_b + p_tie, torch.ones(11))
    spread = model.spread(x_a, x_b)
    assert spread["std"].shape == spread["bald"].shape == (11, 4)
    assert (spread["bald"] >= 0).all()
    assert model.overall_utility(x_a).shape == (11,)


def test_the_config_refuses_a_veto_criterion_it_does_not_judge():
    with pytest.raises(ValueError, match="'harm' is not one of the criteria"):
        RewardModelConfig(criteria=("overall",), veto_criterion="harm")


# --- optimisation -----------------------------------------------------------------------------


def test_every_parameter_changes_after_one_optimisation_step():
    x_a, x_b, _, outcomes = synthetic_pairs(64, seed=2)
    three = np.concatenate([outcomes, outcomes[:, :1]], axis=1)
    data = preference_data(x_a, x_b, three, criteria=("relevance", "diversity", "overall"))
    config = replace(
        SMALL,
        criteria=("relevance", "diversity", "overall"),
        veto_criterion=None,
        epochs=1,
        min_steps_per_epoch=1,
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        initial = RewardModel(config, input_dim=6)
    trained = train_reward_model(config, data).model
    assert trained.state_dict().keys() == initial.state_dict().keys()
    for (name, before), after in zip(initial.named_parameters(), trained.parameters(), strict=True):
        assert not torch.equal(before, after), name
    assert not torch.equal(trained.weights[0][0], trained.weights[0][1])  # members differ


def test_members_share_nothing():
    model = RewardModel(SMALL, input_dim=6)
    x_a, x_b, _, outcomes = synthetic_pairs(32, seed=3)
    outcomes = torch.from_numpy(np.concatenate([outcomes, outcomes], axis=1))
    member_log_likelihood(model, x_a, x_b, outcomes, torch.ones(3, 32))[0].backward()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            assert parameter.grad[1:].abs().sum() == 0, name  # only member 0 moved


def test_zero_weight_pairs_do_not_count():
    model = RewardModel(replace(TWO, members=2), input_dim=6)
    x_a, x_b, _, outcomes = synthetic_pairs(40, seed=4)
    flipped = np.where(outcomes < 2, 1 - outcomes, outcomes)  # contradicting labels
    padded_outcomes = torch.from_numpy(np.concatenate([outcomes, flipped])).long()
    weights = torch.cat([torch.ones(2, 40), torch.zeros(2, 40)], dim=1)
    with torch.no_grad():
        alone = member_log_likelihood(
            model, x_a, x_b, torch.from_numpy(outcomes).long(), weights[:, :40]
        )
        padded = member_log_likelihood(
            model, torch.cat([x_a, x_a]), torch.cat([x_b, x_b]), padded_outcomes, weights
        )
    assert torch.allclose(alone, padded)


def test_a_linear_model_agrees_with_an_independent_maximum_likelihood_fit():
    """One criterion, utility linear in 4 features: the reward model with no hidden layer, one
    member and no bootstrap maximizes the same Davidson likelihood as scipy below.

    Tolerance: with 3,000 pairs the maximum-likelihood estimate itself is uncertain by about
    0.03 in each weight (standard error from the Fisher information), i.e. a few hundredths
    in the predicted probabilities; two optimizers of the same likelihood must agree far
    more closely than that, so we ask for 0.01 in probability and 0.02 in weights."""
    rng = np.random.default_rng(5)
    true_w, true_log_nu = np.array([1.0, -0.5, 0.25, 0.0]), np.log(0.7)
    x_a, x_b = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))
    probabilities = davidson_probabilities((x_a - x_b) @ true_w, np.exp(true_log_nu))
    draws = rng.random(4000)[:, None] > probabilities.cumsum(axis=-1)
    outcomes = np.minimum(draws.sum(axis=-1), 2)
    train, test = slice(0, 3000), slice(3000, 4000)

    def negative_log_likelihood(theta):
        delta = torch.tensor((x_a[train] - x_b[train]) @ theta[:4])
        ll = davidson_log_likelihood(
            delta, torch.zeros_like(delta), torch.tensor(outcomes[train]), torch.tensor(theta[4])
        )
        return -ll.item()

    fit = minimize(negative_log_likelihood, np.zeros(5), method="L-BFGS-B", tol=1e-12)
    config = RewardModelConfig(
        criteria=("overall",),
        veto_criterion=None,
        hidden_sizes=(),
        members=1,
        bootstrap=False,
        weight_decay=0.0,
        utility_bound=1e6,
        epochs=600,
        patience=600,  # optimize to convergence: no early stop, a constant learning rate
        min_improvement=0.0,
        plateau_lr_factor=1.0,
        batch_size=3000,
        min_steps_per_epoch=1,
        lr=0.03,
    )
    as_tensor = lambda array: torch.tensor(array, dtype=torch.float32)  # noqa: E731
    data = PreferenceData(
        as_tensor(x_a[train]),
        as_tensor(x_b[train]),
        torch.tensor(outcomes[train, None], dtype=torch.int8),
        torch.ones(3000),
        ("overall",),
    )
    model = train_reward_model(config, data).model
    predicted = predict_probabilities(model, as_tensor(x_a[test]), as_tensor(x_b[test]))[:, 0]
    reference = davidson_probabilities((x_a[test] - x_b[test]) @ fit.x[:4], np.exp(fit.x[4]))
    assert np.abs(predicted - reference).max() < 0.01
    weights = (model.weights[0][0, :, 0] / model.feature_scale).detach().numpy()
    assert np.abs(weights - fit.x[:4]).max() < 0.02
    assert abs(model.log_nu.item() - fit.x[4]) < 0.02


# --- learning ---------------------------------------------------------------------------------


def test_a_tiny_run_learns_a_known_utility(learned):
    result, (x_a, x_b, probabilities, _) = learned
    predicted = predict_probabilities(result.model, x_a, x_b)
    accuracy = expected_accuracy(probabilities, predicted[..., 0] >= predicted[..., 1])
    bayes = bayes_optimal_accuracy(probabilities)
    assert bayes > 0.8  # the labels carry a clear signal ...
    assert accuracy > 0.95 * bayes  # ... and the model recovers nearly all of it
    assert result.history[0]["loss"] > result.train_loss


def test_the_ensemble_disagrees_more_out_of_distribution(learned):
    result, (x_a, x_b, _, _) = learned
    far_a, far_b, _, _ = synthetic_pairs(2000, seed=6, shift=6.0)
    near = result.model.spread(x_a, x_b)
    far = result.model.spread(far_a, far_b)
    assert far["std"].mean() > 1.5 * near["std"].mean()
    assert far["bald"].mean() > 1.5 * near["bald"].mean()


# --- the veto rule ----------------------------------------------------------------------------


def test_a_clearly_less_safe_slate_never_gets_the_higher_overall_utility():
    config = replace(SMALL, members=5, veto_weight=10.0, utility_bound=5.0)  # margin 1.0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = RewardModel(config, input_dim=7)
        x_a, x_b = 3 * torch.randn(4000, 7), 3 * torch.randn(4000, 7)
    with torch.no_grad():  # make overall swing wildly so that it would win without the rule,
        model.weights[-1][:, :, CRITERIA.index("overall")] *= 200  # and safety gaps exceed
        model.weights[-1][:, :, CRITERIA.index("safety")] *= 20  # the margin often
    with torch.no_grad():
        mean_a, mean_b = model.utilities(x_a).mean(0), model.utilities(x_b).mean(0)
        safety, overall = CRITERIA.index("safety"), CRITERIA.index("overall")
        clearly_less_safe = mean_a[:, safety] <= mean_b[:, safety] - config.veto_margin
        overall_says_a = mean_a[:, overall] > mean_b[:, overall]
        u_a, u_b = model.overall_utility(x_a), model.overall_utility(x_b)
    contested = clearly_less_safe & overall_says_a
    assert contested.sum() > 50  # the rule is really put to the test
    assert (u_a[clearly_less_safe] < u_b[clearly_less_safe]).all()
    assert config.veto_margin == pytest.approx(1.0)


# --- checkpoints ------------------------------------------------------------------------------


def test_save_then_load_gives_identical_predictions(tmp_path, learned):
    result, (x_a, x_b, _, _) = learned
    schema = replace(SCHEMA, penalty_names=("p",))
    path = tmp_path / "reward.pt"
    digest = save_checkpoint(path, result.model, schema, step=123)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["reward.pt"]  # no temporary file left
    model, step = load_checkpoint(path, sha256=digest, schema=schema)
    assert step == 123
    assert model.config == result.model.config
    with torch.no_grad():
        assert torch.equal(model.utilities(x_a), result.model.utilities(x_a))
        assert torch.equal(model.probabilities(x_a, x_b), result.model.probabilities(x_a, x_b))


def test_a_tampered_checkpoint_is_refused(tmp_path):
    model = RewardModel(SMALL, input_dim=SCHEMA.dim)
    path = tmp_path / "reward.pt"
    digest = save_checkpoint(path, model, SCHEMA, step=1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path, sha256=digest, schema=SCHEMA)


def test_a_checkpoint_for_another_feature_schema_is_refused(tmp_path):
    model = RewardModel(SMALL, input_dim=SCHEMA.dim)
    path = tmp_path / "reward.pt"
    digest = save_checkpoint(path, model, SCHEMA, step=1)
    with pytest.raises(CheckpointError, match="feature schema differs"):
        load_checkpoint(path, sha256=digest, schema=replace(SCHEMA, n_topics=4))
    with pytest.raises(CheckpointError, match="feature schema differs"):
        load_checkpoint(path, sha256=digest, schema=replace(SCHEMA, version="reward-features/1"))


def test_saving_again_replaces_the_checkpoint_whole(tmp_path):
    path = tmp_path / "reward.pt"
    first = save_checkpoint(path, RewardModel(SMALL, input_dim=SCHEMA.dim), SCHEMA, step=1)
    second = save_checkpoint(path, RewardModel(SMALL, input_dim=SCHEMA.dim), SCHEMA, step=2)
    assert first != second
    assert load_checkpoint(path, sha256=second, schema=SCHEMA)[1] == 2
    with pytest.raises(CheckpointError):
        load_checkpoint(path, sha256=first, schema=SCHEMA)
