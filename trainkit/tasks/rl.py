"""The RL stage of RLHF (stage 3): the policy samples several answers per prompt, a reward model or a reward function
scores them, and PPO's clipped objective with a KL penalty to the frozen reference updates the policy, with
group-relative advantages (GRPO: no value network) or, as an option, a learned value head on the policy's trunk and
GAE (PPO as in InstructGPT). Val/test log exact match of greedy answers, as SFT does."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from trainkit.checkpoints import load_task
from trainkit.errors import ConfigError
from trainkit.losses.ppo import clipped_policy_loss, gae_advantages, group_advantages, value_loss
from trainkit.metrics.rewards import RewardFunction
from trainkit.tasks.language import INITIAL, REFERENCE, ReferencePolicyModule, resolve_reference
from trainkit.tasks.reward import RewardModule


class RLModule(ReferencePolicyModule):
    """GRPO/PPO on prompts with references (PromptDataModule). Logs train/reward (mean), train/kl (to the reference,
    per token), train/clip_frac, train/response_length (tokens), and val/test exact_match.

    The policy and the frozen reference start from `reference` (an SFT checkpoint) or, with `initial`, from the
    model the other arguments build. The reference and the reward model never train and are not saved in checkpoints.
    """

    frozen_models = (REFERENCE, "reward_model")
    stage = "RL"

    def __init__(
        self,
        reference: str | None = None,
        reward_model: str | None = None,
        reward_fn: RewardFunction | None = None,
        group_size: int = 8,
        ppo_epochs: int = 2,
        clip: float = 0.2,
        kl_coef: float = 0.04,
        scale_rewards: bool = True,
        temperature: float = 1.0,
        max_grad_norm: float | None = 1.0,
        advantage: Literal["group", "gae"] = "group",
        gamma: float = 1.0,
        lam: float = 0.95,
        value_coef: float = 0.1,
        runs_dir: str = "runs",
        **kwargs: Any,
    ) -> None:
        """Args:
        reference: an SFT run's experiment name (its newest best.ckpt under --runs_dir), a checkpoint path, or
            `initial`: where the policy starts, and the frozen model the KL penalty holds it to.
        reward_model: a RewardModule run's experiment name or checkpoint (same tokenizer as the policy).
        reward_fn: instead, a RewardFunction (prompts, responses, references) -> rewards given by class_path, e.g.
            trainkit.metrics.rewards.ExactMatchReward.
        group_size: answers sampled per prompt; advantages are relative to the group's mean (GRPO).
        ppo_epochs: updates on each batch of sampled answers; from the second on, PPO's clip limits the step.
        clip: PPO's clip range epsilon (0.2 in the PPO paper).
        kl_coef: weight of the per-token KL to the reference (0.04 in the GRPO paper).
        scale_rewards: divide advantages by the group's standard deviation (GRPO); false: Dr. GRPO's centring only.
        temperature: sampling temperature of the answers (1: the policy's own distribution).
        max_grad_norm: gradient norm clip per update (RL steps its own optimizer, so --trainer.gradient_clip_val is
            not used); None: no clipping.
        advantage: `group` (GRPO: each answer's reward against its group's) or `gae` (a value head on the policy's
            last hidden state, trained on the returns, and per-token advantages by GAE, whitened over the batch).
        gamma: GAE's discount (1: the reward at the answer's end counts fully at every token).
        lam: GAE's lambda (0.95, the usual PPO value).
        value_coef: weight of the value loss beside the policy loss (TRL's vf_coef 0.1).
        runs_dir: where experiment-name references and reward models are looked up; the CLI sets it to --runs_dir.
        **kwargs: the language model's arguments (model_name or model_config, tokenizer, max_new_tokens, optimizer,
            scheduler); with a checkpoint reference the model and tokenizer are the checkpoint's.
        """
        if reference is None:
            raise ConfigError(
                "RL needs a reference model: set --model.init_args.reference to the SFT experiment name (e.g. lm_sft), "
                "an SFT checkpoint path, or `initial` for a frozen copy of the starting policy"
            )
        if (reward_model is None) == (reward_fn is None):
            raise ConfigError(
                "give exactly one of --model.init_args.reward_model (a reward model run, e.g. lm_reward) and "
                "--model.init_args.reward_fn (e.g. trainkit.metrics.rewards.ExactMatchReward)"
            )
        if group_size < 2:
            raise ConfigError(f"group_size={group_size}: advantages compare answers to one prompt; use 2 or more")
        self.reference_path = None if reference == INITIAL else resolve_reference(reference, runs_dir)
        super().__init__(**kwargs)
        self.save_hyperparameters()  # under the CLI, reward_fn as given (class_path): a checkpoint reloads it
        self.reward_model: RewardModule | None = None
        if self.reference_path is not None:
            self.hparams["reference"] = str(self.reference_path)
        if reward_model is not None:
            path = resolve_reference(reward_model, runs_dir)
            self.hparams["reward_model"] = str(path)
            self.reward_model = _load_reward_model(path, len(self.tokenizer))
        self.reference_model = copy.deepcopy(self.model)
        self.freeze_helpers()
        self.reward_fn = reward_fn
        self.group_size, self.ppo_epochs, self.clip, self.kl_coef = group_size, ppo_epochs, clip, kl_coef
        self.scale_rewards, self.temperature, self.max_grad_norm = scale_rewards, temperature, max_grad_norm
        self.automatic_optimization = False  # several PPO updates per batch of sampled answers
        self.advantage, self.gamma, self.lam, self.value_coef = advantage, gamma, lam, value_coef
        self.value_head: nn.Linear | None = None
        if advantage == "gae":
            self.value_head = nn.Linear(self.model.config.hidden_size, 1)
            nn.init.zeros_(self.value_head.weight)  # every state is worth 0 at the start
            nn.init.zeros_(self.value_head.bias)

    def build_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The policy's optimizer, with the value head (outside the language model) as one more param group."""
        optimizer = super().build_optimizer(lr)
        if self.value_head is not None:
            optimizer.add_param_group({"params": list(self.value_head.parameters())})
        return optimizer

    @torch.no_grad()
    def rollout(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Sample `group_size` answers per prompt; their ids, masks, log-probabilities under the policy and the
        reference, and rewards."""
        prompt_ids = batch["prompt_ids"].repeat_interleave(self.group_size, 0)
        prompt_mask = batch["prompt_mask"].repeat_interleave(self.group_size, 0)
        out = self.model.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=self.max_new_tokens, do_sample=True,
            temperature=self.temperature, top_k=0, top_p=1.0,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
        )
        start = prompt_ids.shape[1]
        response_mask = _until_eos(out[:, start:], self.tokenizer.eos_token_id)
        mask = torch.cat([prompt_mask, response_mask], 1)
        old_logps, old_values = self.policy_outputs(out, mask, start)
        return {
            "ids": out, "mask": mask, "response_mask": response_mask, "old_logps": old_logps, "old_values": old_values,
            "ref_logps": self.token_logps(self.reference_model, out, mask, start),
            "rewards": self.score(batch, out, mask, start, response_mask),
        }

    def token_logps(self, model: nn.Module, ids: Tensor, mask: Tensor, start: int) -> Tensor:
        """Log-probability of each answer token (from `start` on) under `model` at the sampling temperature."""
        return self._answer_outputs(model, ids, mask, start)[0]

    def policy_outputs(self, ids: Tensor, mask: Tensor, start: int) -> tuple[Tensor, Tensor | None]:
        """The policy's answer-token log-probabilities and, with a value head, the value of the state before each
        answer token (N, T); one forward pass for both."""
        logps, hidden = self._answer_outputs(self.model, ids, mask, start, hidden=self.value_head is not None)
        return logps, None if hidden is None else self.value_head(hidden).squeeze(-1).float()

    def _answer_outputs(
        self, model: nn.Module, ids: Tensor, mask: Tensor, start: int, hidden: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded prompts
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=hidden)
        logps = (out.logits[:, start - 1:-1].float() / self.temperature).log_softmax(-1)
        logps = torch.gather(logps, 2, ids[:, start:].unsqueeze(-1)).squeeze(-1)
        return logps, out.hidden_states[-1][:, start - 1:-1] if hidden else None

    def score(self, batch: dict[str, Any], ids: Tensor, mask: Tensor, start: int, response_mask: Tensor) -> Tensor:
        """One reward per answer: the reward model's score of prompt + answer, or the reward function's."""
        if self.reward_model is not None:
            return self.reward_model(ids, mask)
        # Reward functions read text: decoding is a host read-back, as sampling (which stops on EOS) already is.
        # Tokens after the EOS become padding, a special token the decoder drops (0 is a byte, "\x00", to the
        # byte tokenizer: an answer that stopped early would never match).
        answers = torch.where(response_mask.bool(), ids[:, start:], self.tokenizer.pad_token_id)
        responses = self.tokenizer.batch_decode(answers, skip_special_tokens=True)
        repeat = self.group_size
        prompts = [p for p in batch["prompts"] for _ in range(repeat)]
        references = [r for r in batch["references"] for _ in range(repeat)]
        return torch.as_tensor(self.reward_fn(prompts, responses, references), dtype=torch.float32, device=ids.device)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        rollout = self.rollout(batch)
        returns = None
        if self.value_head is None:
            advantages = group_advantages(rollout["rewards"], self.group_size, self.scale_rewards)
        else:
            advantages, returns = self.gae(rollout)
        start = batch["prompt_ids"].shape[1]
        optimizer = self.optimizers()
        for _ in range(self.ppo_epochs):
            logps, values = self.policy_outputs(rollout["ids"], rollout["mask"], start)
            loss, kl, clip_frac = clipped_policy_loss(
                logps, rollout["old_logps"], rollout["ref_logps"], advantages, rollout["response_mask"], self.clip,
                self.kl_coef,
            )
            if returns is not None:
                critic_loss = value_loss(values, returns, rollout["response_mask"])
                loss = loss + self.value_coef * critic_loss
            optimizer.zero_grad()
            self.manual_backward(loss)
            if self.max_grad_norm is not None:
                self.clip_gradients(optimizer, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
            optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        size = len(advantages)
        values = {
            "loss": loss.detach(), "reward": rollout["rewards"].mean(), "kl": kl, "clip_frac": clip_frac,
            "response_length": rollout["response_mask"].sum(-1).float().mean(),
        }
        if returns is not None:
            values["value_loss"] = critic_loss.detach()
        for name, value in values.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=True, prog_bar=name in ("reward", "kl"),
                     batch_size=size)
        return loss.detach()


    def gae(self, rollout: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-token (advantages whitened over the batch's answer tokens, returns): the reward arrives at each
        answer's last token, the value head's estimates of the sampling-time states bootstrap the rest."""
        mask = rollout["response_mask"]
        last = (mask.sum(-1) - 1).clamp(min=0)
        rewards = torch.zeros_like(rollout["old_values"])
        rewards[torch.arange(len(last), device=last.device), last] = rollout["rewards"].to(rewards.dtype)
        advantages, returns = gae_advantages(rewards, rollout["old_values"], mask, self.gamma, self.lam)
        weights = mask.to(advantages.dtype)
        count = weights.sum().clamp(min=2)
        mean = (advantages * weights).sum() / count
        std = (((advantages - mean) ** 2 * weights).sum() / (count - 1)).sqrt()
        return (advantages - mean) / (std + 1e-4) * weights, returns


def _until_eos(tokens: Tensor, eos_id: int) -> Tensor:
    """1 on each answer's tokens up to and including its first EOS, 0 after (generate pads finished answers)."""
    is_eos = (tokens == eos_id).long()
    return ((is_eos.cumsum(-1) - is_eos) == 0).long()


def _load_reward_model(path: Path, vocab: int) -> RewardModule:
    """The RewardModule of checkpoint `path`, checked to read the policy's token ids."""
    model = load_task(path)
    if not isinstance(model, RewardModule):
        raise ConfigError(
            f"reward_model '{path}' is a {type(model).__name__} checkpoint; pass one of a reward model "
            "(trainkit.tasks.RewardModule, configs/language/reward.yaml)"
        )
    if len(model.tokenizer) != vocab:
        raise ConfigError(
            f"reward_model '{path}' has a {len(model.tokenizer)}-token tokenizer but the policy {vocab}; train the "
            "reward model from the same SFT run (configs/language/reward.yaml)"
        )
    return model
