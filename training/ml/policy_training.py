"""Training the recommender policy of ``policy.py``: behaviour cloning from demonstrations,
then conservative, constrained improvement against the reward model and the logged rewards;
staged exploration; and the evaluation helpers of a candidate. Plain torch and NumPy.

1. Behaviour cloning
--------------------
A demonstration step is a context x, the candidates C the expert was shown, the chosen slate
c_1 … c_m in order and the rejected candidates with their reasons. The cloned policy's slate
builder (policy.py) picks c_j among the candidates not chosen yet with probability
softmax_i(s(x, i) − δ · rep_j(i)), rep_j(i) the number of c_1 … c_{j−1} sharing i's primary
topic. Its negative log-likelihood (the Plackett–Luce likelihood of the order, as in ListMLE,
Xia et al. 2008, with the builder's diversity term) is

    L_PL = − Σ_j [ s(x, c_j) − δ rep_j(c_j) − log Σ_{i ∈ C \\ {c_<j}} exp(s(x, i) − δ rep_j(i)) ].

Rejected candidates are strong negatives: every rejected r must score below every chosen
item by a margin μ (a pairwise logistic loss, RankNet, Burges et al. 2005),

    L_rej = Σ_r ω(reason_r) · mean_j softplus(μ − (s(x, c_j) − s(x, r))),

ω = ``BCConfig.reason_weights`` (an unsafe rejection counts most). A step weighs its
reviewer's reliability (× channel weight), ρ_s: L_BC = Σ_s ρ_s (L_PL + L_rej) / Σ_s ρ_s.
AdamW, early stopping on the likelihood of a held-out tenth of the steps.

2. The critic (the logged rewards)
----------------------------------
``ValueCritic`` gives per (context, item) a click logit a(x, i) and a harm cost g(x, i) ≥ 0
in reward units, and q̂ = σ(a) − g, the expected reward per unit of examination. A logged
slate's positions are examined with the known DCG weights w_j (the position-based click model,
Richardson et al. 2007; Craswell et al. 2008), so

    P(click at j) = w_j σ(a(x, i_j)),    E[cost] = Σ_j w_j g(x, i_j),   cost = #clicks − reward,

and the critic minimizes the Bernoulli NLL of the clicks plus ``cost_weight`` × the squared
error of the cost. Rows logged without clicks fit E[reward] = Σ_j w_j q̂(x, i_j) instead. The
critic's greedy slate is then the one-step optimum of its estimates.

3. Conservative, constrained improvement
----------------------------------------
The deployed policy maximizes, at every position,

    E_π[q̂ − λ · penalty] − β KL(π ‖ π_BC),

whose solution is π ∝ π_BC exp((q̂ − λ p) / β) (the KL-regularized / advantage-weighted
policy: Peters et al. 2010, REPS; Peng et al. 2019, AWR; Nair et al. 2020, AWAC): the logits
s_BC + q̂/β and soft-rule weight λ/β of ``RecommenderPolicy``. The coefficient β =
``ImprovementConfig.kl_coefficient`` = 0.05 reward units per nat: to make an item e times
likelier than the cloned policy does, the critic must expect it to earn 0.05 more reward per
unit of examination (about a tenth of a typical good item's click probability); so the
critic's clear evidence (harm costs of ~1–2, relevance gaps of ~0.3) overrules the clone,
and its noise (~0.02) does not.

The value the policy maximizes is risk-averse about harm: q̂ = P̂(click) − (1 + ν) ĝ with
ν = ``harm_aversion`` = 2. The logged reward charges harm at its average cost over the
users a context cannot tell apart (a sensitivity-2 item harms only some adults), while
the experts' judgments, and the reward model's veto rule that encodes them (reward_model.py:
a clearly less safe slate never wins), trade relevance for safety far more steeply; ν = 2
makes an expected unit of harm cost three times its reward cost. It lowers the return a
little and the harm shown a lot (bench/policy.py measures both).

Soft rules are a Lagrangian penalty: λ ≥ 0 is learned by dual ascent (Altman 1999; Tessler et
al. 2019, "Reward constrained policy optimization"),

    λ ← max(0, λ + η (E_π[penalty] − b)),

b = ``penalty_budget`` (the admin's budget of expected penalty per slate), E_π measured on
slates the policy builds in replay contexts. Above the budget λ rises and the penalty falls.

The critic learns from the logged rewards and the reward model's overall utility U. For a
context in replay, A is a slate of the current policy and B the same slate with one position
swapped for another candidate of its top m; the ensemble's members give P_m(A ≻ B) =
σ(U_m(A) − U_m(B)). The critic's slate values differ by Δ = w_j (q̂(a) − q̂(b)), and it
minimizes the cross-entropy between σ(κ Δ) and the members' mean probability, weighted by
(1 − 2 std_m P_m) (sure judgments count most); κ > 0 (learned) converts reward units into the
reward model's utility units. ``distill_weight`` sets this term against the logged rewards'.

Replay buffer: contexts with what was shown and observed, sampled with prioritized replay
(Schaul et al. 2016): P(i) ∝ p_i^α with p_i the row's last absolute reward-prediction
error (the advantage the critic missed; new rows get the largest priority so far), and
importance weights (N P(i))^{−β_IS}, β_IS = 1 (clicks are noisy: a partial correction would
bias the click estimates toward the noisiest rows), scaled to mean 1 per batch. The
reward-model term and the dual ascent draw their contexts from the same buffer, by the
same priorities (contexts without a response may be added, with priority 1).

Offline, before serving, the critic fits the logs (and the reward-model term) for at most
``offline_steps`` steps, measured every ``validation_every`` steps on a held-out
``validation_share`` of the logged rows; it stops after ``patience`` measurements without
improvement and keeps its best weights (early stopping). Fit further, it extrapolates to
items the logging policy seldom showed and its greedy slates get worse (measured in
bench/policy.py's world: 0.85 × the oracle's return after 400 steps, 0.44 after 6,000).

4. Staged exploration (``serve_slates``)
----------------------------------------
Stage 0: greedy. Stage 1: a request explores with probability ``share`` while the day's
budget lasts; it samples from the policy's softmax only among the items the cloned policy
ranks in its top m AND whose reward-model uncertainty (std over members of P(i ≻ the greedy
first item)) is at most ``max_uncertainty`` AND whose harm cost the critic puts at most at
``max_harm``; outside that support only the greedy item is taken (policy.py). Stage 2: the
support is the deployed policy's top ``wide_top_m``. The served slate's propensity is exact:
p · P_support(slate) + (1 − p) · [slate = greedy]. The serving side keeps the day's count of
exploring requests and passes what is left of ``daily_budget`` as ``budget_left``.

5. Evaluation helpers: hit@k and NDCG@k against an expert's order, hard-rule violation rate,
soft penalty, intra-list diversity, catalog coverage, novelty, per-segment exposure, and
``target_pscores`` for off-policy evaluation (``ope.py``) of logged slates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from governance.engine.core import CompiledPolicy, EngineContext
from training.ml.features import (
    CONTEXT_ARRAYS,
    CatalogView,
    Contexts,
    FeatureSchema,
    penalty_matrix,
    position_weights,
    slate_features,
)
from training.ml.policy import (
    ClonedPolicy,
    ContextTensors,
    ItemTensors,
    RecommenderPolicy,
    ScorerShape,
    SlateBatch,
    SlateRules,
    ValueCritic,
    build_slates,
)
from training.ml.reward_model import RewardModel

REJECT_REASONS = ("unsafe", "irrelevant", "repetitive", "low_quality", "other")
Logger = Callable[[str, int, float], None]  # (phase, step, loss)


def no_logging(phase: str, step: int, loss: float) -> None:
    """A logger that does nothing (tests)."""


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DemonstrationSteps:
    """S demonstration steps as arrays (catalog positions, -1 padded)."""

    contexts: Contexts  # one row per step: the state the expert saw
    chosen: np.ndarray  # int64[S, k]: the slate, best first
    candidates: np.ndarray  # int64[S, C]: the candidates shown (may repeat chosen/rejected)
    rejected: np.ndarray  # int64[S, R]
    reasons: np.ndarray  # int64[S, R]: index into REJECT_REASONS (-1 padding)
    weights: np.ndarray  # float32[S]: reviewer reliability × channel weight

    def __len__(self) -> int:
        return len(self.chosen)

    def take(self, rows) -> DemonstrationSteps:
        rows = np.asarray(rows)
        return DemonstrationSteps(
            self.contexts.take(rows),
            self.chosen[rows],
            self.candidates[rows],
            self.rejected[rows],
            self.reasons[rows],
            self.weights[rows],
        )


@dataclass(frozen=True, eq=False)
class LoggedBatch:
    """B logged impressions: what was shown in which context and how the user responded."""

    contexts: Contexts
    slates: np.ndarray  # int64[B, k], -1 padded
    rewards: np.ndarray  # float[B]
    clicks: np.ndarray | None = None  # bool[B, k]; None when only the reward is known

    def __len__(self) -> int:
        return len(self.slates)


@dataclass(frozen=True, eq=False)
class PolicyInputs:
    """B contexts as the slate builder needs them."""

    contexts: ContextTensors
    allowed: np.ndarray  # bool[B, N]: CompiledPolicy.allowed_mask per context
    penalties: np.ndarray  # float[B, N]: SlateRules.item_penalties per context
    engine: tuple[EngineContext, ...] = ()

    def __len__(self) -> int:
        return len(self.allowed)

    def take(self, rows) -> PolicyInputs:
        rows = np.asarray(rows)
        engine = tuple(self.engine[r] for r in rows) if self.engine else ()
        return PolicyInputs(
            self.contexts.take(rows), self.allowed[rows], self.penalties[rows], engine
        )


def policy_inputs(
    compiled: CompiledPolicy,
    rules: SlateRules,
    contexts: Contexts,
    engine: Sequence[EngineContext],
    n_segments: int,
) -> PolicyInputs:
    """The builder's inputs for contexts and their engine contexts (audience, recent topics)."""
    masks: dict[str, np.ndarray] = {}
    allowed = np.stack(
        [
            masks.setdefault(c.audience, compiled.allowed_mask(EngineContext(c.audience)))
            for c in engine
        ]
    )
    return PolicyInputs(
        ContextTensors.from_contexts(contexts, n_segments),
        allowed,
        rules.item_penalties(engine),
        tuple(engine),
    )


def concat_contexts(parts: Sequence[Contexts]) -> Contexts:
    names = ("segment", "minor", "situation", *CONTEXT_ARRAYS)
    return Contexts(*(np.concatenate([getattr(p, name) for p in parts]) for name in names))


# --- 1. behaviour cloning ---------------------------------------------------------------------


@dataclass(frozen=True)
class BCConfig:
    hidden: int = 32  # width of the scorer's hidden layer
    epochs: int = 80  # passes over the steps at most
    patience: int = 8  # stop when the held-out likelihood has not improved for this many
    batch_size: int = 64  # steps per optimisation step
    lr: float = 3e-3  # AdamW learning rate
    weight_decay: float = 1e-3  # decoupled weight decay
    margin: float = 1.0  # μ: a rejected item must score this far below the chosen ones
    reason_weights: tuple[tuple[str, float], ...] = (
        ("unsafe", 4.0),
        ("irrelevant", 1.0),
        ("repetitive", 1.0),
        ("low_quality", 1.0),
        ("other", 0.5),
    )  # ω(reason) of a rejection
    validation_share: float = 0.1  # steps held out for early stopping (none below 20 steps)
    seed: int = 0  # initialization, split and batch order


@dataclass
class BCResult:
    policy: ClonedPolicy
    epochs: int
    seconds: float
    train_loss: float
    validation_nll: float  # per chosen item, on the held-out steps (nan without them)
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class _BCBatch:
    """Steps as tensors: a deduplicated pool per step with the chosen items first."""

    pool: Tensor  # long[S, P], -1 padded; columns 0..m-1 the chosen slate in order
    primary: Tensor  # long[S, P]: primary topic of each pool item (-1 padding)
    n_chosen: Tensor  # long[S]
    feasible: Tensor  # bool[S, k, P]: pool items the builder could pick at position j
    rejected: Tensor  # long[S, R]: pool column of each rejected item, -1 padded
    rejected_repeats: Tensor  # float[S, R]: chosen items sharing the rejected one's topic
    rejection_weight: Tensor  # float[S, R]
    weight: Tensor  # float[S]


def _bc_batch(
    steps: DemonstrationSteps,
    items: ItemTensors,
    reason_weights: dict,
    rules: SlateRules | None,
) -> _BCBatch:
    pools, rejected_columns, rejection_weights = [], [], []
    weight_of = np.array([reason_weights.get(name, 1.0) for name in REJECT_REASONS])
    for row in range(len(steps)):
        chosen = steps.chosen[row][steps.chosen[row] >= 0]
        others = np.concatenate([steps.candidates[row], steps.rejected[row]])
        others = others[(others >= 0) & ~np.isin(others, chosen)]
        _, first = np.unique(others, return_index=True)
        pool = np.concatenate([chosen, others[np.sort(first)]])
        column = {int(item): c for c, item in enumerate(pool)}
        valid = (steps.rejected[row] >= 0) & ~np.isin(steps.rejected[row], chosen)
        rejected = [column[int(i)] for i in steps.rejected[row][valid]]
        reasons = steps.reasons[row][valid]
        pools.append(pool)
        rejected_columns.append(rejected)
        rejection_weights.append(weight_of[np.clip(reasons, 0, len(REJECT_REASONS) - 1)])
    s, k = len(steps), steps.chosen.shape[1]
    width = max(len(p) for p in pools)
    r_width = max([len(r) for r in rejected_columns] + [1])
    pool = np.full((s, width), -1, dtype=np.int64)
    rejected = np.full((s, r_width), -1, dtype=np.int64)
    r_weight = np.zeros((s, r_width), dtype=np.float32)
    for row in range(s):
        pool[row, : len(pools[row])] = pools[row]
        rejected[row, : len(rejected_columns[row])] = rejected_columns[row]
        r_weight[row, : len(rejected_columns[row])] = rejection_weights[row]
    primary = np.where(pool >= 0, items.primary[np.maximum(pool, 0)], -1)
    n_chosen = (steps.chosen >= 0).sum(axis=1)
    chosen_primary = np.where(np.arange(width) < n_chosen[:, None], primary, -2)
    rejected_primary = np.take_along_axis(primary, np.maximum(rejected, 0), axis=1)
    repeats = (rejected_primary[:, :, None] == chosen_primary[:, None, :]).sum(axis=2)
    return _BCBatch(
        pool=torch.from_numpy(pool),
        primary=torch.from_numpy(primary),
        n_chosen=torch.from_numpy(n_chosen),
        feasible=torch.from_numpy(_pool_feasibility(pool, n_chosen, k, rules)),
        rejected=torch.from_numpy(rejected),
        rejected_repeats=torch.from_numpy((repeats * (rejected >= 0)).astype(np.float32)),
        rejection_weight=torch.from_numpy(r_weight),
        weight=torch.from_numpy(steps.weights.astype(np.float32)),
    )


def _pool_feasibility(
    pool: np.ndarray, n_chosen: np.ndarray, k: int, rules: SlateRules | None
) -> np.ndarray:
    """bool[S, k, P]: at position j, pool items not chosen before that keep the slate
    prefix-valid under ``rules`` (policy.py); the expert's own choice always counts as
    feasible (an expert may build a slate the builder would reach differently)."""
    s, width = pool.shape
    columns = np.arange(width)
    feasible = np.zeros((s, k, width), dtype=bool)
    valid = pool >= 0
    safe = np.maximum(pool, 0)
    for j in range(k):
        ok = valid & (columns >= j)[None, :]
        if rules is not None and j:
            before = safe[:, :j]
            live = (np.arange(j)[None, :] < n_chosen[:, None])[:, :, None]
            if rules.topic_cap is not None:
                topics = rules.topics[safe]  # [S, P, m]
                prior = rules.topics[before]  # [S, j, m]
                same = (topics[:, :, :, None, None] == prior[:, None, None, :, :]) & (
                    topics[:, :, :, None, None] >= 0
                )
                counts = (same & live[:, None, None, :, :]).sum(axis=(3, 4))  # [S, P, m]
                ok &= (counts < rules.topic_cap).all(axis=2)
            if rules.min_sources and j < rules.min_sources:
                used = rules.source[before][:, None, :] == rules.source[safe][:, :, None]
                ok &= ~(used & live[:, :, 0][:, None, :]).any(axis=2)
        ok[:, j] |= valid[:, j] & (j < n_chosen)
        feasible[:, j] = ok
    return feasible


def behaviour_cloning_loss(
    policy: ClonedPolicy,
    contexts: ContextTensors,
    items: ItemTensors,
    batch: _BCBatch,
    margin: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(L_BC, Σ_s ρ_s L_PL, Σ_s ρ_s m_s) of the module docstring for one batch of steps: the
    weighted mean loss, and the weighted NLL and chosen-item count for per-item figures.
    The Plackett–Luce denominators run over the items the builder could pick at each
    position (``feasible``); a rejected item's score carries the diversity term against the
    whole chosen slate."""
    scores = policy(contexts, items, batch.pool.clamp(min=0))  # [S, P]
    delta = policy.diversity
    repeats = torch.zeros_like(scores)
    nll = torch.zeros(len(scores))
    k = int(batch.n_chosen.max()) if len(scores) else 0
    for j in range(k):
        if j:
            earlier = batch.primary[:, j - 1 : j]
            repeats = repeats + ((batch.primary == earlier) & (batch.n_chosen > j - 1)[:, None])
        logits = (scores - delta * repeats).masked_fill(~batch.feasible[:, j], float("-inf"))
        has = batch.n_chosen > j
        term = logits[:, j] - torch.logsumexp(logits, dim=1)
        nll = nll - torch.where(has, term, torch.zeros_like(term))
    # Rejected candidates: softplus(μ − (s(c_j) − s(r) + δ rep(r))), mean over the chosen.
    has_rejected = batch.rejected >= 0
    rejected_scores = scores.gather(1, batch.rejected.clamp(min=0))
    rejected_scores = rejected_scores - delta * batch.rejected_repeats  # [S, R]
    columns = torch.arange(batch.pool.shape[1])
    chosen_mask = columns[None, :] < batch.n_chosen[:, None]  # [S, P]
    gaps = scores[:, None, :] - rejected_scores[:, :, None]  # [S, R, P]
    hinge = nnf.softplus(margin - gaps) * chosen_mask[:, None, :]
    per_rejection = hinge.sum(dim=2) / batch.n_chosen.clamp(min=1)[:, None]
    rejection = (per_rejection * batch.rejection_weight * has_rejected).sum(dim=1)
    weight = batch.weight
    loss = (weight * (nll + rejection)).sum() / weight.sum().clamp(min=1e-8)
    return loss, (weight * nll).sum(), (weight * batch.n_chosen).sum()


def train_behaviour_cloning(
    steps: DemonstrationSteps,
    items: ItemTensors,
    shape: ScorerShape,
    config: BCConfig | None = None,
    *,
    rules: SlateRules | None = None,
    logger: Logger = no_logging,
) -> BCResult:
    """A cloned policy fit to ``steps`` (module docstring, 1); ``rules`` the slate-level hard
    rules the experts' builder enforced (their feasibility enters the likelihood)."""
    config = config or BCConfig()
    if len(steps) == 0:
        raise ValueError("steps: no demonstration steps to learn from")
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        policy = ClonedPolicy(shape, config.hidden)
    n_segments = shape.n_segments
    order = rng.permutation(len(steps))
    n_validation = int(len(steps) * config.validation_share) if len(steps) >= 20 else 0
    validation, train = order[:n_validation], order[n_validation:]
    reasons = dict(config.reason_weights)
    batch_of = {}

    def tensors(rows: np.ndarray):
        part = steps.take(rows)
        contexts = ContextTensors.from_contexts(part.contexts, n_segments)
        return contexts, _bc_batch(part, items, reasons, rules)

    if n_validation:
        batch_of["validation"] = tensors(validation)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best_state, best_nll, best_epoch = _state_copy(policy), math.inf, 0
    history, epoch, train_loss = [], 0, math.nan
    prepared = [
        tensors(train[start : start + config.batch_size])
        for start in range(0, len(train), config.batch_size)
    ]
    for epoch in range(1, config.epochs + 1):
        policy.train()
        losses = []
        for index in rng.permutation(len(prepared)):
            contexts, batch = prepared[index]
            loss, _, _ = behaviour_cloning_loss(policy, contexts, items, batch, config.margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        train_loss = float(np.mean(losses))
        nll = train_loss
        if n_validation:
            policy.eval()
            with torch.no_grad():
                contexts, batch = batch_of["validation"]
                _, total, count = behaviour_cloning_loss(
                    policy, contexts, items, batch, config.margin
                )
                nll = float(total / count.clamp(min=1e-8))
        history.append({"epoch": epoch, "loss": train_loss, "validation_nll": nll})
        logger("bc", epoch, train_loss)
        if nll < best_nll - 1e-4:
            best_state, best_nll, best_epoch = _state_copy(policy), nll, epoch
        elif epoch - best_epoch >= config.patience:
            break
    policy.load_state_dict(best_state)
    policy.eval()
    return BCResult(
        policy=policy,
        epochs=epoch,
        seconds=time.perf_counter() - started,
        train_loss=train_loss,
        validation_nll=best_nll if n_validation else math.nan,
        history=history,
    )


def _state_copy(module: torch.nn.Module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


# --- 2. the critic and the replay buffer ------------------------------------------------------


@dataclass(frozen=True)
class CriticConfig:
    hidden: int = 32  # width of the critic's hidden layer
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 1e-4  # decoupled weight decay
    batch_size: int = 256  # replay rows per optimisation step
    cost_weight: float = 1.0  # weight of the squared cost error against the click NLL
    priority_alpha: float = 0.4  # α of prioritized replay (0: uniform)
    priority_beta: float = 1.0  # β_IS: 1 corrects fully (clicks are noisy; no bias wanted)
    capacity: int = 100_000  # replay rows kept (the oldest are overwritten)
    seed: int = 0


def critic_losses(
    critic: ValueCritic,
    contexts: ContextTensors,
    items: ItemTensors,
    slates: Tensor,
    rewards: Tensor,
    clicks: Tensor,
    has_clicks: Tensor,
    cost_weight: float,
) -> tuple[Tensor, Tensor]:
    """Per-row losses float[B] and absolute reward-prediction errors float[B] (module
    docstring, 2). ``slates`` long[B, k] -1 padded, ``clicks`` float[B, k], ``has_clicks``
    bool[B] (rows without clicks fit the reward)."""
    valid = (slates >= 0).float()
    k = slates.shape[1]
    w = torch.from_numpy(position_weights(k).astype(np.float32))[None, :]
    click_logit, harm = critic.heads(contexts, items, slates.clamp(min=0))
    # log P(click) = log w + log σ(a); log(1 − w σ(a)) = log((1 − w) σ(a) + σ(−a)).
    log_click = torch.log(w) + nnf.logsigmoid(click_logit)
    log_no_click = torch.logaddexp(
        torch.log1p(-w) + nnf.logsigmoid(click_logit), nnf.logsigmoid(-click_logit)
    )
    click_nll = -(valid * (clicks * log_click + (1 - clicks) * log_no_click)).sum(dim=1)
    cost = clicks.sum(dim=1) - rewards
    predicted_cost = (valid * w * harm).sum(dim=1)
    predicted_reward = (valid * w * (torch.sigmoid(click_logit) - harm)).sum(dim=1)
    with_clicks = click_nll + cost_weight * (predicted_cost - cost) ** 2
    reward_only = (predicted_reward - rewards) ** 2
    losses = torch.where(has_clicks, with_clicks, reward_only)
    return losses, (predicted_reward - rewards).abs().detach()


class ReplayBuffer:
    """A ring buffer of contexts, what was shown and the response, with prioritized sampling
    (module docstring, 3). Rows added without a response (``slates`` None) only serve the
    reward model's distillation and the dual ascent."""

    def __init__(self, capacity: int, n_topics: int, k: int, alpha: float = 0.6):
        self.capacity, self.k, self.alpha = capacity, k, alpha
        self.segment = np.zeros(capacity, dtype=np.int64)
        self.minor = np.zeros(capacity, dtype=bool)
        self.situation = np.zeros((capacity, 6), dtype=np.float32)
        self.arrays = np.zeros((len(CONTEXT_ARRAYS), capacity, n_topics), dtype=np.float32)
        self.slates = np.full((capacity, k), -1, dtype=np.int64)
        self.rewards = np.zeros(capacity)
        self.clicks = np.zeros((capacity, k), dtype=bool)
        self.has_clicks = np.zeros(capacity, dtype=bool)
        self.has_response = np.zeros(capacity, dtype=bool)
        self.priority = np.zeros(capacity)
        self.engine: list[EngineContext | None] = [None] * capacity
        self.size, self.next = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        contexts: Contexts,
        slates: np.ndarray | None = None,
        rewards: np.ndarray | None = None,
        clicks: np.ndarray | None = None,
        *,
        engine: Sequence[EngineContext] | None = None,
        priority: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add B rows; returns their positions. New rows get ``priority`` or the largest
        priority so far (so each is replayed soon)."""
        b = len(contexts.segment)
        rows = (self.next + np.arange(b)) % self.capacity
        self.segment[rows] = contexts.segment
        self.minor[rows] = contexts.minor
        self.situation[rows] = contexts.situation
        for a, name in enumerate(CONTEXT_ARRAYS):
            self.arrays[a, rows] = getattr(contexts, name)
        self.has_response[rows] = slates is not None
        self.slates[rows] = -1
        self.clicks[rows] = False
        if slates is not None:
            width = slates.shape[1]
            self.slates[rows, :width] = slates
            self.rewards[rows] = rewards
            self.has_clicks[rows] = clicks is not None
            if clicks is not None:
                self.clicks[rows, :width] = clicks
        top = self.priority[: self.size].max() if self.size else 1.0
        self.priority[rows] = top if priority is None else np.maximum(priority, 1e-6)
        for row, index in enumerate(rows):
            self.engine[index] = engine[row] if engine is not None else None
        self.next = int((self.next + b) % self.capacity)
        self.size = min(self.size + b, self.capacity)
        return rows

    def contexts(self, rows: np.ndarray) -> Contexts:
        return Contexts(
            self.segment[rows],
            self.minor[rows],
            self.situation[rows],
            *(self.arrays[a, rows] for a in range(len(CONTEXT_ARRAYS))),
        )

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        beta: float = 0.4,
        responded: bool | None = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """n rows drawn with P(i) ∝ priority^α among the rows with (True) or without
        (False) a response, or all (None); and their importance weights (N P(i))^−β, scaled
        to mean 1 over the batch (so the step size does not shrink with the spread)."""
        candidates = np.arange(self.size)
        if responded is not None:
            candidates = candidates[self.has_response[: self.size] == responded]
        if not len(candidates):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        p = self.priority[candidates] ** self.alpha
        p = p / p.sum()
        picked = rng.choice(len(candidates), size=n, p=p)
        weights = (len(candidates) * p[picked]) ** (-beta)
        return candidates[picked], weights / weights.mean()

    def update_priorities(self, rows: np.ndarray, errors: np.ndarray) -> None:
        self.priority[rows] = np.maximum(np.asarray(errors, dtype=float), 1e-6)


class CriticTrainer:
    """Fits a ValueCritic on replayed rows (module docstring, 2 and 3)."""

    def __init__(self, critic: ValueCritic, items: ItemTensors, n_segments: int, config):
        self.critic, self.items, self.n_segments, self.config = critic, items, n_segments, config
        self.optimizer = torch.optim.AdamW(
            critic.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.log_kappa = torch.nn.Parameter(torch.tensor(math.log(5.0)))
        self.kappa_optimizer = torch.optim.Adam([self.log_kappa], lr=0.05)
        self.steps = 0

    def step(self, buffer: ReplayBuffer, rng: np.random.Generator) -> float:
        """One optimisation step on a prioritized batch of responded rows; the loss."""
        rows, weights = buffer.sample(
            self.config.batch_size, rng, beta=self.config.priority_beta, responded=True
        )
        if not len(rows):
            return math.nan
        contexts = ContextTensors.from_contexts(buffer.contexts(rows), self.n_segments)
        self.critic.train()
        losses, errors = critic_losses(
            self.critic,
            contexts,
            self.items,
            torch.from_numpy(buffer.slates[rows]),
            torch.from_numpy(buffer.rewards[rows].astype(np.float32)),
            torch.from_numpy(buffer.clicks[rows].astype(np.float32)),
            torch.from_numpy(buffer.has_clicks[rows]),
            self.config.cost_weight,
        )
        loss = (torch.from_numpy(weights.astype(np.float32)) * losses).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.critic.eval()
        buffer.update_priorities(rows, errors.numpy() + 1e-3)
        self.steps += 1
        return float(loss.detach())

    def distill_step(
        self,
        pairs: RewardPairs,
        weight: float,
    ) -> float:
        """One step of the reward-model term (module docstring, 3) on prepared pairs."""
        contexts = ContextTensors.from_contexts(pairs.contexts, self.n_segments)
        self.critic.train()
        both = torch.from_numpy(np.stack([pairs.item_a, pairs.item_b], axis=1))
        values = self.critic(contexts, self.items, both)  # [B, 2]
        delta = torch.from_numpy(pairs.position_weight.astype(np.float32)) * (
            values[:, 0] - values[:, 1]
        )
        target = torch.from_numpy(pairs.p_a.astype(np.float32))
        certainty = torch.from_numpy(pairs.certainty.astype(np.float32))
        logit = self.log_kappa.exp() * delta
        loss = (
            weight
            * (
                certainty * nnf.binary_cross_entropy_with_logits(logit, target, reduction="none")
            ).mean()
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.kappa_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.kappa_optimizer.step()
        self.critic.eval()
        return float(loss.detach())


# --- the reward model as a teacher ------------------------------------------------------------


class RewardScorer:
    """The reward model's overall utility U per member for (context, slate) pairs:
    ``scorer(contexts, slates, engine) -> float[M, B]`` (reward_model.py's veto rule
    applied per member). ``compiled`` supplies the soft-rule features when the schema has
    penalty columns (then ``engine`` contexts are required)."""

    def __init__(
        self,
        model: RewardModel,
        schema: FeatureSchema,
        catalog: CatalogView,
        compiled: CompiledPolicy | None = None,
    ):
        self.model, self.schema, self.catalog, self.compiled = model, schema, catalog, compiled

    @torch.no_grad()
    def __call__(
        self,
        contexts: Contexts,
        slates: np.ndarray,
        engine: Sequence[EngineContext] | None = None,
    ) -> np.ndarray:
        width = self.schema.max_slate_size
        padded = np.full((len(slates), width), -1, dtype=np.int64)
        padded[:, : min(width, slates.shape[1])] = slates[:, :width]
        penalties = None
        if self.schema.penalty_names:
            if engine is None or self.compiled is None:
                raise ValueError("engine: the reward model's features need the soft rules")
            penalties = penalty_matrix(self.compiled, engine, padded)
        x = slate_features(self.schema, self.catalog, contexts, padded, penalties)
        self.model.eval()
        u = self.model.utilities(x)  # [M, B, C]
        config = self.model.config
        total = u[..., config.criteria.index(config.overall_criterion)]
        if config.veto_criterion is not None:
            total = (
                total + config.veto_weight * u[..., config.criteria.index(config.veto_criterion)]
            )
        return total.double().numpy()


@dataclass(frozen=True, eq=False)
class RewardPairs:
    """Slate pairs differing in one position, judged by the reward model's members."""

    contexts: Contexts
    item_a: np.ndarray  # int64[B]: the item in slate A's swapped position
    item_b: np.ndarray  # int64[B]: the item in slate B's
    position_weight: np.ndarray  # float[B]: w_j of the swapped position
    p_a: np.ndarray  # float[B]: mean over members of σ(U_m(A) − U_m(B))
    certainty: np.ndarray  # float[B]: 1 − 2 std over members of σ(U_m(A) − U_m(B))


def reward_pairs(
    scorer: RewardScorer,
    policy: RecommenderPolicy,
    contexts: Contexts,
    inputs: PolicyInputs,
    items: ItemTensors,
    k: int,
    rules: SlateRules,
    rng: np.random.Generator,
    *,
    top_m: int = 20,
) -> RewardPairs:
    """For each context: A a slate of the policy (stochastic), B = A with one random position
    swapped for a random item of the policy's top m not in A; judged by the members."""
    logits = policy.logits(inputs.contexts, items)
    slates = build_slates(
        logits, inputs.allowed, k, rules, temperature=max(policy.temperature, 1.0),
        diversity=policy.diversity_weight, item_penalties=inputs.penalties,
        penalty_scale=policy.penalty_scale, rng=rng,
    ).items  # fmt: skip
    keep = np.flatnonzero(slates[:, 0] >= 0)  # contexts where the rules allow no slate: none
    slates, logits, contexts = slates[keep], logits[keep], contexts.take(keep)
    inputs = inputs.take(keep)
    b = len(slates)
    m = min(top_m, logits.shape[1])
    masked = np.where(inputs.allowed, logits, -np.inf)
    top = np.argpartition(-masked, m - 1, axis=1)[:, :m]
    lengths = (slates >= 0).sum(axis=1)
    position = (rng.random(b) * lengths).astype(np.int64)
    swapped = slates.copy()
    item_b = np.empty(b, dtype=np.int64)
    for row in range(b):
        options = np.setdiff1d(top[row], slates[row])
        options = options[inputs.allowed[row, options]] if len(options) else options
        item_b[row] = rng.choice(options) if len(options) else slates[row, position[row]]
        swapped[row, position[row]] = item_b[row]
    item_a = slates[np.arange(b), position]
    engine = inputs.engine or None
    u_a = scorer(contexts, slates, engine)
    u_b = scorer(contexts, swapped, engine)
    p = 1.0 / (1.0 + np.exp(-(u_a - u_b)))  # [M, B]
    return RewardPairs(
        contexts=contexts,
        item_a=np.maximum(item_a, 0),
        item_b=np.maximum(item_b, 0),
        position_weight=position_weights(k)[position] * (item_a != item_b) * (item_a >= 0),
        p_a=p.mean(axis=0),
        certainty=np.clip(1.0 - 2.0 * p.std(axis=0), 0.0, 1.0),
    )


def item_uncertainty(
    scorer: RewardScorer,
    contexts: Contexts,
    greedy_first: np.ndarray,
    candidates: np.ndarray,
    engine: Sequence[EngineContext] | None = None,
) -> np.ndarray:
    """float[B, m]: for each candidate i of each context, the std over the reward model's
    members of P(i ≻ g) = σ(U_m([i]) − U_m([g])) between one-item slates, g the greedy
    slate's first item (0 for g itself): how unsure the model is that i is no worse."""
    b, m = candidates.shape
    rows = np.repeat(np.arange(b), m)
    repeated = contexts.take(rows)
    greedy_first = np.maximum(greedy_first, 0)  # no greedy slate: compare with item 0
    engine_rows = [engine[r] for r in rows] if engine else None
    u_i = scorer(repeated, candidates.reshape(-1, 1), engine_rows)
    u_g = scorer(contexts, greedy_first.reshape(-1, 1), engine)
    p = 1.0 / (1.0 + np.exp(-(u_i - np.repeat(u_g, m, axis=1))))
    return p.std(axis=0).reshape(b, m)


# --- 3. conservative, constrained improvement -------------------------------------------------


@dataclass(frozen=True)
class ImprovementConfig:
    kl_coefficient: float = 0.05  # β: reward units per nat of KL from the cloned policy
    harm_aversion: float = 2.0  # ν: a unit of expected harm cost weighs 1 + ν in q̂
    penalty_budget: float = 0.5  # b: the admin's budget of expected soft penalty per slate
    dual_lr: float = 0.05  # η of the dual ascent on λ (λ per unit of penalty over budget)
    dual_contexts: int = 128  # replay contexts per dual-ascent measurement
    offline_steps: int = 1500  # at most this many critic steps on the logs before serving
    validation_share: float = 0.1  # logged rows held out to stop the offline fit early
    validation_every: int = 100  # critic steps between two held-out measurements
    patience: int = 3  # measurements without improvement before the offline fit stops
    distill_weight: float = 0.5  # weight of the reward-model term against the logged rewards
    distill_every: int = 8  # one reward-model step every this many critic steps
    distill_batch: int = 64  # pairs per reward-model step
    temperature: float = 1.0  # τ of the stochastic policy
    critic: CriticConfig = field(default_factory=CriticConfig)

    def __post_init__(self) -> None:
        if self.offline_steps < 0:
            raise ValueError(f"offline_steps: expected ≥ 0, got {self.offline_steps}")
        if not 0 <= self.validation_share < 1:
            raise ValueError(
                f"validation_share: expected 0 ≤ share < 1, got {self.validation_share}"
            )
        for name in ("validation_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected ≥ 1, got {getattr(self, name)}")


def slate_penalties(
    rules: SlateRules, item_penalties: np.ndarray, slates: np.ndarray
) -> np.ndarray:
    """float[B]: the soft penalty of each (-1 padded) slate: the item-level terms plus the
    low-source-diversity terms; equals CompiledPolicy.penalty for the rules' policy."""
    valid = slates >= 0
    safe = np.maximum(slates, 0)
    total = (np.take_along_axis(item_penalties, safe, axis=1) * valid).sum(axis=1)
    if rules.source_terms:
        sources = np.where(valid, rules.source[safe], -1)
        ordered = np.sort(sources, axis=1)
        distinct = ((ordered[:, 1:] != ordered[:, :-1]) & (ordered[:, 1:] >= 0)).sum(axis=1)
        distinct = distinct + (ordered >= 0).any(axis=1)
        length = valid.sum(axis=1)
        for weight, target in rules.source_terms:
            total = total + weight * np.maximum(0, np.minimum(target, length) - distinct)
    return total


def dual_ascent_step(multiplier: float, expected_penalty: float, budget: float, lr: float) -> float:
    """λ ← max(0, λ + η (E_π[penalty] − b))."""
    return max(0.0, float(multiplier + lr * (expected_penalty - budget)))


def expected_penalty(
    policy: RecommenderPolicy,
    inputs: PolicyInputs,
    items: ItemTensors,
    k: int,
    rules: SlateRules,
    *,
    greedy: bool,
    rng: np.random.Generator | None = None,
) -> float:
    """The mean soft penalty of the slates the policy builds in ``inputs`` (greedy or one
    draw per context: an unbiased estimate of E_π[penalty])."""
    slates = policy.slates(
        inputs.contexts, items, inputs.allowed, k, rules, greedy=greedy,
        item_penalties=inputs.penalties, rng=rng,
    ).items  # fmt: skip
    return float(slate_penalties(rules, inputs.penalties, slates).mean())


class PolicyImprover:
    """The improvement loop of the module docstring (3): a critic fit on replay (logged and
    online rows) and on the reward model's judgments, and λ by dual ascent, around a fixed
    cloned policy. ``policy`` is the deployed RecommenderPolicy, updated in place."""

    def __init__(
        self,
        policy: RecommenderPolicy,
        items: ItemTensors,
        rules: SlateRules,
        k: int,
        config: ImprovementConfig,
        *,
        reward_scorer: RewardScorer | None = None,
        input_builder: Callable[[Contexts, Sequence[EngineContext]], PolicyInputs] | None = None,
        n_topics: int,
    ):
        self.policy, self.items, self.rules, self.k, self.config = policy, items, rules, k, config
        self.reward_scorer, self.input_builder = reward_scorer, input_builder
        n_segments = policy.shape.n_segments
        if policy.critic is None:
            with torch.random.fork_rng():
                torch.manual_seed(config.critic.seed)
                policy.critic = ValueCritic(policy.shape, config.critic.hidden).eval()
        self.trainer = CriticTrainer(policy.critic, items, n_segments, config.critic)
        self.buffer = ReplayBuffer(
            config.critic.capacity, n_topics, k, config.critic.priority_alpha
        )
        self.rng = np.random.default_rng(config.critic.seed)
        self.multipliers: list[float] = []

    def observe(
        self,
        contexts: Contexts,
        engine: Sequence[EngineContext],
        slates: np.ndarray,
        rewards: np.ndarray,
        clicks: np.ndarray | None = None,
    ) -> None:
        self.buffer.add(contexts, slates, rewards, clicks, engine=engine)

    def add_contexts(self, contexts: Contexts, engine: Sequence[EngineContext]) -> None:
        """Contexts without a response (for the reward model and the dual ascent)."""
        self.buffer.add(contexts, engine=engine, priority=np.ones(len(contexts.segment)))

    def train(self, steps: int, *, logger: Logger = no_logging) -> float:
        """``steps`` critic steps (with the reward-model term every ``distill_every``)."""
        loss = math.nan
        for _ in range(steps):
            loss = self.trainer.step(self.buffer, self.rng)
            self.policy.step += 1
            if (
                self.reward_scorer is not None
                and self.config.distill_weight > 0
                and self.trainer.steps % self.config.distill_every == 0
            ):
                self._distill()
            if self.trainer.steps % 100 == 0:
                logger("critic", self.trainer.steps, loss)
        return loss

    def fit_offline(
        self, held_out: LoggedBatch | None, steps: int, *, logger: Logger = no_logging
    ) -> int:
        """At most ``steps`` critic steps on what the buffer holds, stopped early when the
        loss on the held-out logged rows has not improved for ``patience`` measurements;
        the critic keeps its best weights. Returns the steps those weights had."""
        if held_out is None or len(held_out) < MIN_HELD_OUT_ROWS or steps == 0:
            self.train(steps, logger=logger)
            return steps
        critic = self.policy.critic
        best_loss, best_state, best_steps, stale, done = math.inf, None, 0, 0, 0
        while done < steps and stale < self.config.patience:
            chunk = min(self.config.validation_every, steps - done)
            self.train(chunk, logger=logger)
            done += chunk
            loss = self.held_out_loss(held_out)
            logger("critic_held_out", done, loss)
            if loss < best_loss:
                best_loss, best_steps, stale = loss, done, 0
                best_state = {name: t.clone() for name, t in critic.state_dict().items()}
            else:
                stale += 1
        critic.load_state_dict(best_state)
        return best_steps

    @torch.no_grad()
    def held_out_loss(self, rows: LoggedBatch) -> float:
        """The critic's mean loss (``critic_losses``) on logged rows it was not fit on."""
        has_clicks = rows.clicks is not None
        clicks = rows.clicks if has_clicks else np.zeros(rows.slates.shape, dtype=bool)
        losses, _ = critic_losses(
            self.policy.critic,
            ContextTensors.from_contexts(rows.contexts, self.policy.shape.n_segments),
            self.items,
            torch.from_numpy(rows.slates),
            torch.from_numpy(rows.rewards.astype(np.float32)),
            torch.from_numpy(clicks.astype(np.float32)),
            torch.full((len(rows),), has_clicks),
            self.config.critic.cost_weight,
        )
        return float(losses.mean())

    def _sample_inputs(self, n: int) -> tuple[Contexts, PolicyInputs, np.ndarray] | None:
        if self.input_builder is None or not len(self.buffer):
            return None
        rows, _ = self.buffer.sample(n, self.rng, responded=None)
        contexts = self.buffer.contexts(rows)
        engine = [self.buffer.engine[r] for r in rows]
        if any(e is None for e in engine):
            return None
        return contexts, self.input_builder(contexts, engine), rows

    def _distill(self) -> None:
        sampled = self._sample_inputs(self.config.distill_batch)
        if sampled is None:
            return
        contexts, inputs, _ = sampled
        pairs = reward_pairs(
            self.reward_scorer, self.policy, contexts, inputs, self.items, self.k, self.rules,
            self.rng,
        )  # fmt: skip
        if len(pairs.item_a):
            self.trainer.distill_step(pairs, self.config.distill_weight)

    def update_multiplier(self, *, greedy: bool = False) -> float:
        """One dual-ascent step on λ; returns the measured expected penalty."""
        sampled = self._sample_inputs(self.config.dual_contexts)
        if sampled is None:
            return math.nan
        _, inputs, _ = sampled
        measured = expected_penalty(
            self.policy, inputs, self.items, self.k, self.rules, greedy=greedy, rng=self.rng
        )
        self.policy.multiplier = dual_ascent_step(
            self.policy.multiplier, measured, self.config.penalty_budget, self.config.dual_lr
        )
        self.multipliers.append(self.policy.multiplier)
        return measured


@dataclass
class PolicyTrainingResult:
    policy: RecommenderPolicy
    bc: BCResult | None
    improver: PolicyImprover
    penalties: list[float] = field(default_factory=list)  # measured E[penalty] per dual step
    offline_steps: int = 0  # critic steps on the logs the served critic had (early stopping)


MIN_HELD_OUT_ROWS = 50  # fewer held-out rows measure too noisily to stop on


def split_held_out(
    logged: LoggedBatch, share: float, seed: int
) -> tuple[np.ndarray, LoggedBatch | None]:
    """The rows to fit on (positions into ``logged``) and the held-out rows (None when
    there would be fewer than MIN_HELD_OUT_ROWS: then every row is fit on)."""
    order = np.random.default_rng([seed, 7]).permutation(len(logged))
    n_held = int(round(share * len(logged)))
    if n_held < MIN_HELD_OUT_ROWS:
        return np.arange(len(logged)), None
    held = np.sort(order[:n_held])
    held_out = LoggedBatch(
        logged.contexts.take(held), logged.slates[held], logged.rewards[held],
        None if logged.clicks is None else logged.clicks[held],
    )  # fmt: skip
    return np.sort(order[n_held:]), held_out


def train_policy(
    *,
    shape: ScorerShape,
    items: ItemTensors,
    rules: SlateRules,
    k: int,
    demonstrations: DemonstrationSteps | None,
    logged: LoggedBatch | None = None,
    logged_engine: Sequence[EngineContext] | None = None,
    reward_scorer: RewardScorer | None = None,
    input_builder: Callable[[Contexts, Sequence[EngineContext]], PolicyInputs] | None = None,
    bc_config: BCConfig | None = None,
    config: ImprovementConfig | None = None,
    dual_steps: int = 20,
    dual_greedy: bool = True,
    logger: Logger = no_logging,
) -> PolicyTrainingResult:
    """Behaviour cloning, then offline conservative improvement: the entry point of a
    retraining run. ``input_builder(contexts, engine)`` makes the builder's inputs (masks,
    soft terms) for replay contexts; without it there is no reward-model term and λ stays 0.
    ``dual_greedy``: measure the expected penalty on the greedy slates (what stage 0 serves)
    rather than on draws of the stochastic policy."""
    config = config or ImprovementConfig()
    bc = None
    cloned = None
    if demonstrations is not None and len(demonstrations):
        bc = train_behaviour_cloning(demonstrations, items, shape, bc_config, logger=logger)
        cloned = bc.policy
    policy = RecommenderPolicy(
        shape=shape,
        cloned=cloned,
        kl_coefficient=config.kl_coefficient,
        temperature=config.temperature,
        harm_aversion=config.harm_aversion,
    )
    improver = PolicyImprover(
        policy, items, rules, k, config, reward_scorer=reward_scorer,
        input_builder=input_builder, n_topics=shape.n_topics,
    )  # fmt: skip
    held_out = None
    if logged is not None and len(logged):
        fit, held_out = split_held_out(logged, config.validation_share, config.critic.seed)
        improver.buffer.add(
            logged.contexts.take(fit), logged.slates[fit], logged.rewards[fit],
            None if logged.clicks is None else logged.clicks[fit],
            engine=None if logged_engine is None else [logged_engine[i] for i in fit],
        )  # fmt: skip
    penalties = []
    offline_steps = 0
    if len(improver.buffer) and improver.buffer.has_response[: len(improver.buffer)].any():
        offline_steps = improver.fit_offline(held_out, config.offline_steps, logger=logger)
    for _ in range(dual_steps if input_builder is not None else 0):
        penalties.append(improver.update_multiplier(greedy=dual_greedy))
    return PolicyTrainingResult(policy, bc, improver, penalties, offline_steps)


# --- 4. staged exploration --------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorationSettings:
    stage: int = 0  # 0 greedy; 1 among the clone's top m the reward model is sure about; 2 wider
    share: float = 0.2  # P(a request explores) while the day's budget lasts
    daily_budget: int = 1000  # exploring requests per day at most
    top_m: int = 10  # stage 1: the cloned policy's top m items
    max_uncertainty: float = 0.15  # stage 1: reward-model std of P(i ≻ greedy first) at most
    max_harm: float = 0.05  # stage 1: the critic's harm cost ĝ at most (reward units)
    wide_top_m: int = 50  # stage 2: the deployed policy's top m items
    temperature: float = 1.0  # τ of the exploring softmax

    def __post_init__(self) -> None:
        if self.stage not in (0, 1, 2):
            raise ValueError(f"stage: 0, 1 or 2, got {self.stage}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("share: a probability expected")


@dataclass(frozen=True, eq=False)
class ServedSlates:
    items: np.ndarray  # int64[B, k]
    propensity: np.ndarray  # float[B]: exact probability of each slate under the served policy
    explored: np.ndarray  # bool[B]: drawn from the exploring softmax
    greedy: np.ndarray  # int64[B, k]: the greedy slates
    support: np.ndarray | None  # bool[B, N]: where exploration may pick (None at stage 0)


def top_m_mask(logits: np.ndarray, allowed: np.ndarray, m: int) -> np.ndarray:
    """bool[B, N]: each row's m allowed items of highest logit."""
    m = min(m, logits.shape[1])
    masked = np.where(allowed, logits, -np.inf)
    top = np.argpartition(-masked, m - 1, axis=1)[:, :m]
    mask = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask & allowed


def exploration_support(
    policy: RecommenderPolicy,
    settings: ExplorationSettings,
    inputs: PolicyInputs,
    items: ItemTensors,
    *,
    logits: np.ndarray | None = None,
    cloned_logits: np.ndarray | None = None,
    harm: np.ndarray | None = None,
    greedy_first: np.ndarray | None = None,
    uncertainty: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray | None:
    """bool[B, N] where the stage lets exploration pick (None at stage 0). ``uncertainty(
    greedy_first, candidates int[B, m]) -> float[B, m]`` is the reward model's (stage 1;
    without it the top m alone); ``harm`` float[B, N] the critic's harm costs ĝ (stage 1
    keeps only items with ĝ ≤ ``max_harm``). ``logits`` / ``cloned_logits``: the deployed
    and cloned policies' logits when the caller has them already."""
    if settings.stage == 0:
        return None
    if settings.stage == 2:
        logits = policy.logits(inputs.contexts, items) if logits is None else logits
        return top_m_mask(logits, inputs.allowed, settings.wide_top_m)
    cloned = cloned_logits
    if cloned is None and policy.cloned is not None:
        cloned = policy.cloned_logits(inputs.contexts, items)
    if policy.cloned is None:  # no clone: the deployed policy's own ranking
        cloned = policy.logits(inputs.contexts, items) if logits is None else logits
    support = top_m_mask(cloned, inputs.allowed, settings.top_m)
    if harm is not None:
        support &= harm <= settings.max_harm
    if uncertainty is not None and greedy_first is not None:
        m = min(settings.top_m, support.shape[1])
        candidates = np.argsort(~support, axis=1, kind="stable")[:, :m]
        present = np.take_along_axis(support, candidates, axis=1)
        spread = uncertainty(greedy_first, candidates)
        sure = present & (spread <= settings.max_uncertainty)
        support = np.zeros_like(support)
        np.put_along_axis(support, candidates, sure, axis=1)
    return support


def serve_slates(
    policy: RecommenderPolicy,
    settings: ExplorationSettings,
    inputs: PolicyInputs,
    items: ItemTensors,
    k: int,
    rules: SlateRules,
    *,
    budget_left: int,
    rng: np.random.Generator,
    uncertainty: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> ServedSlates:
    """Slates for B requests under the stage's exploration (module docstring, 4). Requests
    explore with probability ``settings.share`` while ``budget_left`` (the day's remaining
    exploration budget) lasts, in request order; every slate's propensity is exact."""
    cloned = policy.cloned_logits(inputs.contexts, items)
    click, harm = policy.value_parts(inputs.contexts, items)
    logits = cloned
    if policy.critic is not None:
        logits = cloned + (click - (1.0 + policy.harm_aversion) * harm) / policy.kl_coefficient
    common = {
        "diversity": policy.diversity_weight,
        "item_penalties": inputs.penalties,
        "penalty_scale": policy.penalty_scale,
    }
    greedy = build_slates(logits, inputs.allowed, k, rules, greedy=True, **common).items
    b = len(greedy)
    if settings.stage == 0 or settings.share == 0 or budget_left <= 0:
        return ServedSlates(greedy, np.ones(b), np.zeros(b, dtype=bool), greedy, None)
    support = exploration_support(
        policy, settings, inputs, items, logits=logits, cloned_logits=cloned,
        harm=harm if policy.critic is not None else None, greedy_first=greedy[:, 0],
        uncertainty=uncertainty,
    )  # fmt: skip
    # Whether each request may explore: the budget is spent in request order.
    wants = rng.random(b) < settings.share
    may = np.cumsum(wants) <= budget_left
    explore = wants & may
    # A request after the budget ran out could not explore: its slate is the greedy one.
    exhausted = (np.cumsum(wants) - wants) >= budget_left
    probability = np.where(exhausted, 0.0, settings.share)
    sampled = build_slates(
        logits, inputs.allowed, k, rules, temperature=settings.temperature, support=support,
        rng=rng, **common,
    )  # fmt: skip
    served = np.where(explore[:, None], sampled.items, greedy)
    stochastic = build_slates(
        logits, inputs.allowed, k, rules, temperature=settings.temperature, support=support,
        forced=served, **common,
    ).propensity  # fmt: skip
    is_greedy = (served == greedy).all(axis=1)
    propensity = probability * stochastic + (1 - probability) * is_greedy
    return ServedSlates(served, propensity, explore, greedy, support)


# --- 5. evaluation helpers --------------------------------------------------------------------


def ranked_items(logits: np.ndarray, allowed: np.ndarray, length: int) -> np.ndarray:
    """int64[B, length]: each row's allowed items by decreasing logit (-1 when fewer)."""
    masked = np.where(allowed, logits, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :length]
    return np.where(np.take_along_axis(allowed, order, axis=1), order, -1)


def hit_at_k(ranked: np.ndarray, expert: np.ndarray, k: int) -> float:
    """Mean over steps of |top k of ``ranked`` ∩ expert's chosen| / min(k, |chosen|)
    (``ranked`` int[S, L] and ``expert`` int[S, m], -1 padded; steps without choices skip)."""
    scores = []
    for row, chosen in zip(ranked, expert, strict=True):
        chosen = set(chosen[chosen >= 0].tolist())
        if not chosen:
            continue
        top = set(row[:k][row[:k] >= 0].tolist())
        scores.append(len(top & chosen) / min(k, len(chosen)))
    return float(np.mean(scores)) if scores else math.nan


def ndcg_at_k(ranked: np.ndarray, expert: np.ndarray, k: int) -> float:
    """Mean NDCG@k against the expert's order: the expert's item at position p (0-based) of
    m has gain m − p, others 0; DCG = Σ_{r<k} gain(ranked_r) / log2(r + 2), divided by the
    DCG of the expert's own order (Järvelin & Kekäläinen 2002)."""
    scores = []
    for row, chosen in zip(ranked, expert, strict=True):
        chosen = chosen[chosen >= 0]
        m = len(chosen)
        if not m:
            continue
        gain = {int(item): m - p for p, item in enumerate(chosen)}
        dcg = sum(gain.get(int(item), 0) / math.log2(r + 2) for r, item in enumerate(row[:k]))
        ideal = sum((m - r) / math.log2(r + 2) for r in range(min(k, m)))
        scores.append(dcg / ideal)
    return float(np.mean(scores)) if scores else math.nan


def hard_violation_rate(
    compiled: CompiledPolicy, engine: Sequence[EngineContext], slates: np.ndarray
) -> float:
    """Share of slates breaking at least one hard rule (must be 0 for a candidate)."""
    broken = [
        bool(compiled.violations(context, slate[slate >= 0]))
        for context, slate in zip(engine, slates, strict=True)
    ]
    return float(np.mean(broken)) if broken else 0.0


def mean_soft_penalty(
    compiled: CompiledPolicy, engine: Sequence[EngineContext], slates: np.ndarray
) -> float:
    values = [
        compiled.penalty(context, slate[slate >= 0])
        for context, slate in zip(engine, slates, strict=True)
    ]
    return float(np.mean(values)) if values else 0.0


def intra_list_diversity(unit_vectors: np.ndarray, slates: np.ndarray) -> float:
    """Mean over slates of the mean pairwise 1 − cos between item vectors (Ziegler et al.
    2005); ``unit_vectors`` float[N, d] of unit length (CatalogView.unit_vectors)."""
    values = []
    for slate in slates:
        vectors = unit_vectors[slate[slate >= 0]]
        if len(vectors) < 2:
            continue
        cosine = vectors @ vectors.T
        pairs = len(vectors) * (len(vectors) - 1)
        values.append(float((1.0 - cosine).sum() / pairs))
    return float(np.mean(values)) if values else 0.0


def catalog_coverage(slates: np.ndarray, n_items: int) -> float:
    """Distinct items shown / catalog size."""
    return len(np.unique(slates[slates >= 0])) / n_items


def novelty(slates: np.ndarray, popularity: np.ndarray) -> float:
    """Mean self-information −log2 p_i of the shown items, p_i = the item's share of the
    interactions in ``popularity`` (counts, float[N]; add-one smoothed) (Zhou et al. 2010;
    Vargas & Castells 2011)."""
    share = (popularity + 1.0) / (popularity.sum() + len(popularity))
    shown = slates[slates >= 0]
    return float(-np.log2(share[shown]).mean()) if len(shown) else 0.0


def exposure_by_segment(
    slates: np.ndarray, segments: np.ndarray, labels: np.ndarray, n_labels: int, n_segments: int
) -> np.ndarray:
    """float[G, L]: per segment, the position-weighted share of exposure that went to each
    label (an item's source, or its primary topic), rows summing to 1 (0 without slates)."""
    k = slates.shape[1]
    w = position_weights(k)[None, :] * (slates >= 0)
    exposure = np.zeros((n_segments, n_labels))
    np.add.at(
        exposure,
        (np.repeat(segments, k), labels[np.maximum(slates, 0)].reshape(-1)),
        w.reshape(-1),
    )
    totals = exposure.sum(axis=1, keepdims=True)
    return np.divide(exposure, totals, out=np.zeros_like(exposure), where=totals > 0)


def target_pscores(
    policy: RecommenderPolicy,
    inputs: PolicyInputs,
    items: ItemTensors,
    k: int,
    rules: SlateRules,
    slates: np.ndarray,
    *,
    greedy: bool = False,
) -> np.ndarray:
    """float[B]: the evaluated policy's probability of each logged slate (-1 padded to k) in
    its context: ``target_pscore`` for ope.py (greedy: 1 for its own slate, else 0)."""
    padded = np.full((len(slates), k), -1, dtype=np.int64)
    padded[:, : min(k, slates.shape[1])] = slates[:, :k]
    return policy.slates(
        inputs.contexts, items, inputs.allowed, k, rules, greedy=greedy,
        item_penalties=inputs.penalties, forced=padded,
    ).propensity  # fmt: skip


__all__ = [
    "REJECT_REASONS",
    "BCConfig",
    "BCResult",
    "CriticConfig",
    "CriticTrainer",
    "DemonstrationSteps",
    "ExplorationSettings",
    "ImprovementConfig",
    "LoggedBatch",
    "PolicyImprover",
    "PolicyInputs",
    "PolicyTrainingResult",
    "ReplayBuffer",
    "RewardPairs",
    "RewardScorer",
    "ServedSlates",
    "SlateBatch",
    "behaviour_cloning_loss",
    "catalog_coverage",
    "concat_contexts",
    "critic_losses",
    "dual_ascent_step",
    "expected_penalty",
    "exposure_by_segment",
    "exploration_support",
    "hard_violation_rate",
    "hit_at_k",
    "intra_list_diversity",
    "item_uncertainty",
    "mean_soft_penalty",
    "ndcg_at_k",
    "novelty",
    "policy_inputs",
    "ranked_items",
    "reward_pairs",
    "serve_slates",
    "slate_penalties",
    "target_pscores",
    "top_m_mask",
    "train_behaviour_cloning",
    "train_policy",
]
