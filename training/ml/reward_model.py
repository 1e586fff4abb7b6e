"""The reward model: a bootstrap ensemble of small MLPs giving one utility per criterion for a
(context, slate) feature row, trained on pairwise judgments with ties.

Method: each member maps a feature row to utilities u_c(x), one head per criterion, and has
its own tie parameter ν_c; judgments follow the Bradley–Terry model with ties of Davidson
(1970) (see losses.py). Uncertainty comes from a deep ensemble (Lakshminarayanan, Pritzel &
Blundell 2017, "Simple and scalable predictive uncertainty estimation using deep
ensembles") whose members are trained on bootstrap resamples (Efron 1979; Osband et al.
2016, "Deep exploration via bootstrapped DQN"). Disagreement is scored by the spread of
P(A≻B) across members and by BALD, the mutual information between the judgment and the
member (Houlsby et al. 2011, "Bayesian active learning for classification and preference
learning").

The members share nothing; their weights are stacked on a leading member axis and evaluated
together with batched matrix products, so an ensemble costs about one wide MLP.

"Overall" judgments weigh the other criteria, so (with ``overall_from_criteria``) the overall
utility is its own head plus a learned weighted sum of the other heads, u_overall = h_overall
+ Σ_{c ≠ overall} a_c h_c, in the spirit of multi-attribute utility models (Keeney & Raiffa
1976): the overall labels then also train the other heads, and the overall head only has to
learn what the other criteria miss.

The veto rule (``overall_utility``). With ū the members' mean utilities,

    U(x) = ū_overall(x) + W · ū_veto(x),     W = veto_weight, veto = "safety" by default.

Every utility head is bounded, u = B tanh(raw / B) with B = utility_bound, so two slates'
ū_overall differ by less than 2B. Hence if ū_veto(A) ≤ ū_veto(B) − 2B/W, then U(A) < U(B):
a slate judged clearly less safe (by more than the margin 2B/W, 1.0 with the defaults, i.e.
odds of at least e : 1 that the expert calls the other one safer) never gets the higher
overall utility, whatever its other merits. Below the margin, safety and overall trade off
linearly.

Checkpoints are plain dicts (format, config, feature schema, input normalization and weights
in the state dict, step), written atomically (temporary file in the same folder, fsync,
os.replace) and identified by their sha256; loading verifies the digest and the schema.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from training.ml.artifacts import CheckpointError, read_verified, write_atomically
from training.ml.features import FeatureSchema
from training.ml.losses import davidson_log_probabilities

CHECKPOINT_FORMAT = "shepherd-reward-model/1"


@dataclass(frozen=True)
class RewardModelConfig:
    criteria: tuple[str, ...] = ("safety", "relevance", "diversity", "overall")  # one head each
    hidden_sizes: tuple[int, ...] = (64, 64)  # per member; () makes every member linear
    members: int = 5  # ensemble size
    bootstrap: bool = True  # train each member on its own bootstrap resample of the pairs
    epochs: int = 100  # passes over the data at most
    patience: int = 3  # stop after this many epochs without progress: no member's out-of-bag
    min_improvement: float = 1e-3  # loss fell by more than this (nats per label) below its best
    plateau_lr_factor: float = 0.3  # after an epoch without progress the learning rate × this
    batch_size: int = 1024  # pairs per optimisation step, at most
    min_steps_per_epoch: int = 16  # smaller batches for small data sets, down to 32 pairs
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 3.0  # decoupled (AdamW) decay of the weight matrices (× lr per step)
    seed: int = 0  # seeds initialization, bootstrap and batch order
    overall_from_criteria: bool = True  # u_overall = own head + learned mix of the others
    utility_bound: float = 20.0  # B: every head outputs B tanh(raw / B)
    overall_criterion: str = "overall"  # the criterion the veto rule adds to
    veto_criterion: str | None = "safety"  # the criterion that dominates; None: no veto
    veto_weight: float = 40.0  # W in U = u_overall + W u_veto (margin 2B / W)

    def __post_init__(self) -> None:
        if len(set(self.criteria)) != len(self.criteria) or not self.criteria:
            raise ValueError("criteria: expected distinct names, at least one")
        for name in (self.overall_criterion, self.veto_criterion):
            if name is not None and name not in self.criteria:
                raise ValueError(f"{name!r} is not one of the criteria {self.criteria}")
        if self.members < 1:
            raise ValueError("members: at least 1")

    @property
    def veto_margin(self) -> float:
        """A veto-utility gap beyond which the safer slate always has the higher U."""
        return 2 * self.utility_bound / self.veto_weight

    def to_dict(self) -> dict:
        data = asdict(self)
        data["criteria"], data["hidden_sizes"] = list(self.criteria), list(self.hidden_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RewardModelConfig:
        return cls(
            **{
                **data,
                "criteria": tuple(data["criteria"]),
                "hidden_sizes": tuple(data["hidden_sizes"]),
            }
        )


class RewardModel(nn.Module):
    """``members`` independent MLPs D → hidden_sizes → C, with stacked weights."""

    def __init__(self, config: RewardModelConfig, input_dim: int):
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        m = config.members
        sizes = [input_dim, *config.hidden_sizes, len(config.criteria)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1 / math.sqrt(fan_in)  # PyTorch's nn.Linear initialization, per member
            self.weights.append(
                nn.Parameter(torch.empty(m, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(m, 1, fan_out).uniform_(-bound, bound)))
        self.mix = nn.Parameter(torch.zeros(m, len(config.criteria)))  # used by overall only
        self.log_nu = nn.Parameter(torch.full((m, len(config.criteria)), math.log(0.5)))
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_scale", torch.ones(input_dim))

    @property
    def criteria(self) -> tuple[str, ...]:
        return self.config.criteria

    def set_normalization(self, mean: Tensor, scale: Tensor) -> None:
        """Inputs are standardized as (x − mean) / scale before the first layer; a feature
        constant in the training data keeps scale 1 (it may vary later)."""
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(torch.where(scale > 1e-6, scale, torch.ones_like(scale)))

    # --- utilities and probabilities --------------------------------------------------------

    def standardize(self, x: Tensor) -> Tensor:
        """(x − mean) / scale: what the first layer reads."""
        return (x - self.feature_mean) / self.feature_scale

    def utilities(self, x: Tensor) -> Tensor:
        """float[members, B, C] for feature rows x float[B, D]."""
        return self.utilities_of_standardized(self.standardize(x))

    def utilities_of_standardized(self, h: Tensor) -> Tensor:
        """``utilities`` of rows already standardized (training standardizes its data once)."""
        m, b = self.config.members, len(h)
        first = self.weights[0]  # one wide product for the first layer: [B, D] @ [D, M·H]
        h = (h @ first.permute(1, 0, 2).reshape(self.input_dim, -1)).view(b, m, -1)
        h = h.transpose(0, 1) + self.biases[0]
        for weight, bias in zip(self.weights[1:], self.biases[1:], strict=True):
            h = torch.baddbmm(bias, torch.nn.functional.silu(h), weight)
        if self.config.overall_from_criteria:
            h = self._mix_into_overall(h)
        bound = self.config.utility_bound
        return bound * torch.tanh(h / bound)

    def _mix_into_overall(self, h: Tensor) -> Tensor:
        """u_overall += Σ_{c ≠ overall} a_c u_c, the a_c learned per member."""
        overall = self.criteria.index(self.config.overall_criterion)
        others = torch.ones(len(self.criteria), dtype=torch.bool)
        others[overall] = False
        mixed = h[..., overall] + (h * (self.mix * others)[:, None, :]).sum(dim=-1)
        return torch.cat([h[..., :overall], mixed[..., None], h[..., overall + 1 :]], dim=-1)

    forward = utilities

    def member_log_probabilities(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        """float[members, B, C, 3]: each member's log P(A), log P(B), log P(tie)."""
        return davidson_log_probabilities(
            self.utilities(x_a), self.utilities(x_b), self.log_nu[:, None, :]
        )

    def probabilities(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        """float[B, C, 3]: P(A), P(B), P(tie) averaged over members."""
        return self.member_log_probabilities(x_a, x_b).exp().mean(dim=0)

    def prob_prefer(self, x_a: Tensor, x_b: Tensor) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """criterion → (P(A≻B), P(B≻A), P(tie)), each float[B], averaged over members."""
        p = self.probabilities(x_a, x_b)
        return {name: (p[:, c, 0], p[:, c, 1], p[:, c, 2]) for c, name in enumerate(self.criteria)}

    def spread(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Ensemble disagreement, each float[B, C]:

        std   the standard deviation of P(A≻B) across members;
        bald  H(p̄) − mean_m H(p_m), the mutual information between the 3-way judgment and
              the member (p_m a member's (P(A), P(B), P(tie)), p̄ their mean), in nats.
        """
        log_p = self.member_log_probabilities(x_a, x_b)
        p = log_p.exp()
        mean = p.mean(dim=0)
        entropy_of_mean = -(mean * mean.clamp(min=1e-12).log()).sum(dim=-1)
        mean_entropy = -(p * log_p).sum(dim=-1).mean(dim=0)
        std = p[..., 0].std(dim=0, unbiased=False)
        return {"std": std, "bald": (entropy_of_mean - mean_entropy).clamp(min=0.0)}

    def overall_utility(self, x: Tensor) -> Tensor:
        """float[B]: U = ū_overall + W ū_veto (module docstring); ū_overall without a veto."""
        mean = self.utilities(x).mean(dim=0)
        u = mean[:, self.criteria.index(self.config.overall_criterion)]
        if self.config.veto_criterion is None:
            return u
        return (
            u + self.config.veto_weight * mean[:, self.criteria.index(self.config.veto_criterion)]
        )


# --- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, model: RewardModel, schema: FeatureSchema, step: int) -> str:
    """Write the checkpoint atomically; return the sha256 (hex) of the file written."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "input_dim": model.input_dim,
        "feature_schema": schema.to_dict(),
        "state_dict": {
            name: tensor.detach().clone() for name, tensor in model.state_dict().items()
        },
        "step": int(step),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    return write_atomically(path, data)


def load_checkpoint(
    path: str | Path, *, sha256: str, schema: FeatureSchema
) -> tuple[RewardModel, int]:
    """The model and step saved at ``path``; CheckpointError if the file's sha256 is not
    ``sha256`` or its feature schema differs from ``schema``."""
    payload = read_verified(path, sha256=sha256, checkpoint_format=CHECKPOINT_FORMAT)
    saved = FeatureSchema.from_dict(payload["feature_schema"])
    if saved != schema:
        raise CheckpointError(f"feature schema differs: checkpoint {saved}, expected {schema}")
    model = RewardModel(RewardModelConfig.from_dict(payload["config"]), payload["input_dim"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["step"]
