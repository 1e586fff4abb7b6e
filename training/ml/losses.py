"""Losses of the reward model: the Bradley–Terry model with ties of Davidson (1970).

Source: R. R. Davidson, "On extending the Bradley-Terry model to accommodate ties in paired
comparison experiments", Journal of the American Statistical Association 65 (1970), 317–328.
Pure functions of tensors; outcome codes are 0 = A preferred, 1 = B preferred, 2 = tie and
-1 = no label (skipped: "cannot tell" answers are removed upstream and become -1).
"""

from __future__ import annotations

import torch
from torch import Tensor

OUTCOME_A, OUTCOME_B, OUTCOME_TIE, NO_LABEL = 0, 1, 2, -1


def davidson_log_probabilities(u_a: Tensor, u_b: Tensor, log_nu: Tensor) -> Tensor:
    """log P(A), log P(B), log P(tie) stacked on a new last axis.

        P(A)   = e^{u_a}             / Z
        P(B)   = e^{u_b}             / Z
        P(tie) = ν e^{(u_a + u_b)/2} / Z,     Z = e^{u_a} + e^{u_b} + ν e^{(u_a + u_b)/2}

    Dividing every term by e^{(u_a + u_b)/2} shows the probabilities depend on Δ = u_a − u_b
    only: they are the softmax of (Δ/2, −Δ/2, log ν), computed with log-softmax (log-sum-exp)
    so that no exponential overflows. ``log_nu`` broadcasts against ``u_a``.
    """
    half = (u_a - u_b) / 2
    logits = torch.stack([half, -half, torch.broadcast_to(log_nu, half.shape)], dim=-1)
    return torch.log_softmax(logits, dim=-1)


def davidson_log_likelihood(
    u_a: Tensor,
    u_b: Tensor,
    outcome: Tensor,
    log_nu: Tensor,
    weight: Tensor | None = None,
    dim: int | tuple[int, ...] | None = None,
) -> Tensor:
    """The weighted mean log-likelihood of the labeled outcomes:

        ℓ = Σ_i w_i [o_i ≥ 0] log P(o_i | u_a,i, u_b,i, ν) / Σ_i w_i [o_i ≥ 0]

    with P from ``davidson_log_probabilities``. ``outcome`` (integers, -1 = no label) and
    ``weight`` (default 1) broadcast against ``u_a``; the sums run over ``dim`` (default: all
    axes, giving a scalar). An empty selection gives 0.
    """
    outcome = torch.broadcast_to(outcome, u_a.shape)
    labeled = outcome >= 0
    log_p = davidson_log_probabilities(u_a, u_b, log_nu)
    picked = log_p.gather(-1, outcome.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)
    w = labeled.to(u_a.dtype)
    if weight is not None:
        w = w * torch.broadcast_to(weight, u_a.shape)
    axes = tuple(range(u_a.dim())) if dim is None else dim
    total = (w * torch.where(labeled, picked, torch.zeros_like(picked))).sum(dim=axes)
    return total / w.sum(dim=axes).clamp(min=torch.finfo(u_a.dtype).tiny)
