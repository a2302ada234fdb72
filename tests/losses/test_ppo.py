"""GAE and the value loss of the RL stage's optional value head against hand computations."""

from __future__ import annotations

import pytest
import torch

from trainkit.losses.ppo import clipped_policy_loss, gae_advantages, value_loss


def test_gae_by_hand() -> None:
    # row 0: three answer tokens, reward 1 at the last; row 1: two tokens (reward 1 at the second), then padding whose
    # value (9) and reward (5) must count for nothing
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.1, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    # deltas row 0: t2 1 - 0.4 = 0.6, t1 0.4 - 0.2 = 0.2, t0 0.2 - 0.5 = -0.3; A_t = delta_t + 0.5 A_{t+1}
    # deltas row 1: t1 1 + 0 - 0.3 = 0.7, t0 0.3 - 0.1 = 0.2
    assert advantages.tolist() == [pytest.approx([-0.05, 0.5, 0.6]), pytest.approx([0.55, 0.7, 0.0])]
    assert returns.tolist() == [pytest.approx([0.45, 0.7, 1.0]), pytest.approx([0.65, 1.0, 0.0])]
    # gamma discounts the following value: row 0, t1 with gamma 0.5, lam 0: 0 + 0.5 * 0.4 - 0.2 = 0
    assert gae_advantages(rewards, values, mask, gamma=0.5, lam=0.0)[0][0, 1].item() == pytest.approx(0.0)


def test_value_loss_by_hand_counts_only_answer_tokens() -> None:
    values = torch.tensor([[0.0, 1.0], [2.0, 7.0]])
    returns = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert value_loss(values, returns, mask).item() == pytest.approx(0.5 * (1 + 0 + 4) / 3)


def test_per_token_advantages_weigh_each_token() -> None:
    logps = torch.zeros(1, 2, requires_grad=True)
    loss, _, _ = clipped_policy_loss(logps, torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[1.0, -3.0]]),
                                     torch.ones(1, 2), kl_coef=0.0)
    loss.backward()
    assert logps.grad.tolist() == [[-0.5, 1.5]]  # -A_t / tokens at ratio 1
