"""The policy-gradient pieces of the RL stage: group-relative advantages (GRPO, Shao et al. 2024) and PPO's clipped
objective (Schulman et al. 2017) with a KL penalty to a frozen reference, per token; GAE and the value loss for the
optional learned value head.

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
    """(loss, mean KL to the reference, clip fraction) over the response tokens in `mask`, all (N, T); advantages
    (N,) per answer (GRPO) or (N, T) per token (GAE).

    loss = -mean_tokens[min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A) - kl_coef * KL], ratio = pi / pi_old;
    KL per token is the k3 estimator exp(ref - logp) - (ref - logp) - 1 (non-negative, unbiased; GRPO's choice).
    Tokens are averaged over the whole batch, so a long answer weighs by its length (DAPO's token-level mean). The
    clip fraction is the share of tokens whose clipped term is the active one.
    """
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    objective = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    log_ref_ratio = ref_logps - logps
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1
    weights = mask.float()
    tokens = weights.sum().clamp(min=1)
    loss = -((objective - kl_coef * kl) * weights).sum() / tokens
    clipped = ((ratio < 1 - clip) & (adv < 0)) | ((ratio > 1 + clip) & (adv > 0))
    return loss, (kl.detach() * weights).sum() / tokens, (clipped.float() * weights).sum() / tokens


def gae_advantages(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """(advantages, returns), both (N, T), by generalised advantage estimation (Schulman et al. 2016) over each
    answer's tokens in `mask` (a prefix of ones per row): A_t = sum_l (gamma lam)^l delta_{t+l},
    delta_t = r_t + gamma V_{t+1} - V_t, V past an answer's end 0; returns = A + V, the value head's target."""
    weights = mask.to(values.dtype)
    values = values * weights
    rewards = rewards * weights
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):  # T is max_new_tokens: a short loop
        following = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        running = rewards[:, t] + gamma * following - values[:, t] + gamma * lam * running
        advantages[:, t] = running
    return advantages * weights, (advantages + values) * weights


def value_loss(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """Half the mean squared error of the value head against the returns over the tokens in `mask`."""
    weights = mask.float()
    return 0.5 * (((values - returns) ** 2) * weights).sum() / weights.sum().clamp(min=1)
