"""Reward functions of the RL stage: (prompts, responses, references) -> one reward per response.

A subclass of RewardFunction is given by class_path (`--model.init_args.reward_fn.class_path ...`).
"""

from __future__ import annotations

import torch
from torch import Tensor


class RewardFunction:
    """Base of reward functions: called with the prompts, the sampled responses and the reference answers."""

    def __call__(self, prompts: list[str], responses: list[str], references: list[str]) -> Tensor:
        """One reward per response, float (N,)."""
        raise NotImplementedError


class ExactMatchReward(RewardFunction):
    """1 when the response, stripped, equals the reference, else 0: the task's own exact-match score as a reward."""

    def __call__(self, prompts: list[str], responses: list[str], references: list[str]) -> Tensor:
        """One reward per response, float (N,)."""
        return torch.tensor([float(r.strip() == ref.strip()) for r, ref in zip(responses, references, strict=True)])
