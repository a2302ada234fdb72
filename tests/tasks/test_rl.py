"""The RL stage: group-relative advantages and PPO's clipped objective with its KL penalty against hand computations,
a few real GRPO steps that move the policy towards the reward and never the reference, and bad inputs in one line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from tests.conftest import REPO
from tests.tasks.test_language import DATA, TINY, TINY_CLI, _error_line, _trainer
from trainkit.checkpoints import load_task
from trainkit.data import PromptDataModule
from trainkit.losses.ppo import clipped_policy_loss, group_advantages
from trainkit.metrics.rewards import ExactMatchReward, RewardFunction
from trainkit.optim import OptimizerConfig
from trainkit.tasks import RLModule
from trainkit.tasks.language import REFERENCE
from trainkit.tasks.rl import _until_eos

RL = REPO / "configs" / "language" / "rl.yaml"


class AsciiShare(RewardFunction):
    """Reward: the share of an answer's characters that are ASCII, about half for an untrained byte-level model, so
    every group has some spread to learn from."""

    def __call__(self, prompts: list[str], responses: list[str], references: list[str]) -> Tensor:
        return torch.tensor([sum(c.isascii() for c in r) / max(len(r), 1) for r in responses])


def test_group_relative_advantages_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])  # two prompts, 4 answers each
    # group 1: mean 0.5, sample std sqrt(1/3); group 2: all equal -> 0 advantage
    s = math.sqrt(1 / 3) + 1e-4  # eps keeps an all-equal group at 0 / eps = 0
    assert group_advantages(rewards, 4).tolist() == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s,
                                                                          0, 0, 0, 0])
    assert group_advantages(rewards, 4, scale=False).tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    assert group_advantages(rewards, 2, scale=False).tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_clipped_objective_and_kl_by_hand() -> None:
    old = torch.zeros(2, 3)
    # ratios: row 0 (A = +1): 1.5 (clipped to 1.2), 0.9, 1.0; row 1 (A = -2): 0.5 (clipped to 0.8), 1.1, padding
    logps = torch.log(torch.tensor([[1.5, 0.9, 1.0], [0.5, 1.1, 7.0]]))
    ref = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages = torch.tensor([1.0, -2.0])
    loss, kl, clip_frac = clipped_policy_loss(logps, old, ref, advantages, mask, clip=0.2, kl_coef=0.1)
    objective = [min(1.5, 1.2), 0.9, 1.0, min(0.5 * -2, 0.8 * -2), 1.1 * -2]  # min(r A, clip(r) A)
    ratios = [1.5, 0.9, 1.0, 0.5, 1.1]
    kls = [1 / r - math.log(1 / r) - 1 for r in ratios]  # k3 with ref/pi = 1/r
    expected = -sum(o - 0.1 * k for o, k in zip(objective, kls, strict=True)) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert kl.item() == pytest.approx(sum(kls) / 5, rel=1e-6)
    assert clip_frac.item() == pytest.approx(2 / 5)  # 1.5 with A > 0 and 0.5 with A < 0; padding never counts
    # the clipped tokens pass no gradient; an unclipped one does
    logps = logps.clone().requires_grad_(True)
    clipped_policy_loss(logps, old, ref, advantages, mask, clip=0.2, kl_coef=0.0)[0].backward()
    assert logps.grad[0, 0] == 0 and logps.grad[1, 0] == 0 and logps.grad[0, 1] != 0 and logps.grad[1, 2] == 0


def test_answers_are_counted_up_to_their_first_eos() -> None:
    tokens = torch.tensor([[5, 2, 9, 9], [5, 6, 7, 8], [2, 2, 0, 0]])
    assert _until_eos(tokens, 2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert ExactMatchReward()(["p", "p"], [" 85", "tac"], ["85", "cat"]).tolist() == [1.0, 0.0]


def test_an_answer_that_stops_early_earns_its_exact_match_reward() -> None:
    model = RLModule(reference="initial", reward_fn=ExactMatchReward(), model_config=TINY, group_size=2)
    tokenizer = model.tokenizer
    prompt = tokenizer("add 40+45 =")["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    # generate pads an answer that ended before the batch's longest with pad_token_id: 85 <eos> <pad> <pad>
    answers = [[*tokenizer(" 85")["input_ids"], eos, pad, pad], [*tokenizer(" 8500")["input_ids"], eos]]
    ids = torch.tensor([prompt + a for a in answers])
    start = len(prompt)
    response_mask = _until_eos(ids[:, start:], eos)
    batch = {"prompts": ["add 40+45 ="], "references": ["85"]}
    assert model.score(batch, ids, torch.ones_like(ids), start, response_mask).tolist() == [1.0, 0.0]


def test_answer_logps_are_the_samplers_on_left_padded_prompts() -> None:
    """The PPO ratio and the KL are only right if the training forward scores each sampled token as generate did."""
    model = RLModule(reference="initial", reward_fn=ExactMatchReward(), model_config=TINY, max_new_tokens=4,
                     temperature=0.7)
    data = PromptDataModule(**DATA)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert (batch["prompt_mask"] == 0).any()  # prompts of several lengths: some rows are left-padded
    tokenizer = model.tokenizer
    out = model.model.generate(
        input_ids=batch["prompt_ids"], attention_mask=batch["prompt_mask"], max_new_tokens=4, do_sample=True,
        temperature=0.7, top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        output_logits=True, return_dict_in_generate=True,
    )
    start = batch["prompt_ids"].shape[1]
    answer = out.sequences[:, start:]
    response_mask = _until_eos(answer, tokenizer.eos_token_id)
    sampler = torch.stack([(step.float() / 0.7).log_softmax(-1) for step in out.logits], 1)
    expected = torch.gather(sampler, 2, answer.unsqueeze(-1)).squeeze(-1)
    mask = torch.cat([batch["prompt_mask"], response_mask], 1)
    logps = model.token_logps(model.model, out.sequences, mask, start)
    assert torch.allclose(logps * response_mask, expected * response_mask, atol=1e-4)


@pytest.mark.slow  # ~8 s: six batches of sampling and two updates each
def test_grpo_steps_raise_the_reward_and_never_touch_the_reference(tmp_path: Path) -> None:
    model = RLModule(reference="initial", reward_fn=AsciiShare(), model_config=TINY, group_size=4,
                     max_new_tokens=4, kl_coef=0.01, optimizer=OptimizerConfig(lr=0.01))
    reference = {k: v.clone() for k, v in model.reference_model.state_dict().items()}
    data = PromptDataModule(**{**DATA, "batch_size": 4})
    data.setup("fit")
    held_out = next(iter(data.val_dataloader()))
    before = _ascii_mass(model, held_out)
    trainer = _trainer(tmp_path, limit_train_batches=6, limit_val_batches=0, enable_checkpointing=True)
    trainer.fit(model, datamodule=data)
    assert all(torch.equal(v, reference[k]) for k, v in model.reference_model.state_dict().items())
    assert not model.reference_model.training and not any(p.requires_grad for p in model.reference_model.parameters())
    assert any(not torch.equal(v, reference[k]) for k, v in model.model.state_dict().items())
    assert trainer.global_step == 12  # 6 batches x ppo_epochs 2
    after = _ascii_mass(model.eval(), held_out)
    assert after > before + 0.05  # ASCII answers became more likely: 0.50 -> 0.60 measured
    logged = trainer.callback_metrics
    assert {f"train/{k}_epoch" for k in ("reward", "kl", "clip_frac", "response_length")} <= set(logged)
    assert logged["train/kl_epoch"] > 0 and 1 <= logged["train/response_length_epoch"] <= 4
    path = tmp_path / "rl.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    assert saved and not any(k.startswith(f"{REFERENCE}.") for k in saved)


def test_gae_option_trains_a_value_head_beside_the_policy(tmp_path: Path) -> None:
    model = RLModule(reference="initial", reward_fn=AsciiShare(), model_config=TINY, group_size=2, max_new_tokens=3,
                     advantage="gae", optimizer=OptimizerConfig(lr=0.01))
    assert model.value_head.weight.abs().sum() == 0
    data = PromptDataModule(**{**DATA, "batch_size": 2})
    trainer = _trainer(tmp_path, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert model.value_head.weight.abs().sum() > 0  # the value loss reached the head through its param group
    assert trainer.callback_metrics["train/value_loss_epoch"] >= 0
    assert not any(p.requires_grad for p in model.reference_model.parameters())


def _ascii_mass(model: RLModule, batch: dict) -> float:
    """Mean probability the policy gives an ASCII byte as the first answer token: its expected AsciiShare reward."""
    with torch.no_grad():
        logits = model(batch["prompt_ids"], batch["prompt_mask"])[:, -1]
    return logits.softmax(-1)[:, :128].sum(-1).mean().item()


@pytest.mark.slow
def test_rl_through_the_cli(workdir: Path, trainkit) -> None:
    runs = workdir / "runs"
    tiny = [*TINY_CLI, "--model.init_args.reference", "initial", "--trainer.limit_train_batches", "2",
            "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches",
            "1", "--model.init_args.group_size", "2", "--data.init_args.batch_size", "4"]
    assert trainkit("fit", "--config", RL, *tiny, "--runs_dir", runs) == 0
    rows = list(csv.DictReader((runs / "lm_rl" / "version_0" / "metrics.csv").open()))
    assert any(r.get("train/reward_step") for r in rows) and any(r.get("test/exact_match") for r in rows)
    reloaded = load_task(runs / "lm_rl" / "version_0" / "checkpoints" / "last.ckpt")  # as export and test do
    assert isinstance(reloaded.reward_fn, ExactMatchReward)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.init_args.reference", "null"], "RL needs a reference model"),
        (["--model.init_args.reward_fn", "null"], "give exactly one of --model.init_args.reward_model"),
        (["--model.init_args.reference", "initial", "--model.init_args.group_size", "1"], "group_size=1"),
    ],
    ids=["no-reference", "no-reward", "group-of-one"],
)
def test_bad_rl_inputs_end_in_one_line(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture, args: list[str], expected: str
) -> None:
    assert trainkit("fit", "--config", RL, *TINY_CLI, *args) != 0
    assert expected in _error_line(capsys)
