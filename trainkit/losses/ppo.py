"""The policy-gradient pieces of the RL stage: group-relative advantages (GRPO, Shao et al. 2024) and PPO's clipped
objective (Schulman et al. 2017) with a KL penalty to a frozen reference, per token.

Written here because TRL, the library that has them, ships them inside its trainers rather than as functions.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """Each reward minus the mean of its group (the responses to one prompt, consecutive rows), divided by the
    group's standard deviation when `scale` (GRPO; Dr. GRPO leaves it out): (N,) -> (N,)."""
    groups = rewards.float().view(-1, group_size)
    centred = groups - groups.mean(-1, keepdim=True)
    if scale:
        centred = centred / (groups.std(-1, keepdim=True) + eps)
    return centred.flatten()


def clipped_policy_loss(
    logps: Tensor, old_logps: Tensor, ref_logps: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2,
    kl_coef: float = 0.04,
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, mean KL to the reference, clip fraction) over the response tokens in `mask`, all (N, T) but the (N,)
    advantages.

    loss = -mean_tokens[min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A) - kl_coef * KL], ratio = pi / pi_old;
    KL per token is the k3 estimator exp(ref - logp) - (ref - logp) - 1 (non-negative, unbiased; GRPO's choice).
    Tokens are averaged over the whole batch, so a long answer weighs by its length (DAPO's token-level mean). The
    clip fraction is the share of tokens whose clipped term is the active one.
    """
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(-1)
    objective = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    log_ref_ratio = ref_logps - logps
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1
    weights = mask.float()
    tokens = weights.sum().clamp(min=1)
    loss = -((objective - kl_coef * kl) * weights).sum() / tokens
    clipped = ((ratio < 1 - clip) & (adv < 0)) | ((ratio > 1 + clip) & (adv > 0))
    return loss, (kl.detach() * weights).sum() / tokens, (clipped.float() * weights).sum() / tokens
