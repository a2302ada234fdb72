"""The reward model: its head reads the last non-padding token whichever side pads, the Bradley-Terry loss is the
formula, and the CLI trains it and scores pairs to JSONL (the SFT start is the code DPO uses, tested there)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.tasks.test_language import DATA, TINY, TINY_CLI
from trainkit.data import PreferenceDataModule
from trainkit.data._text import pad
from trainkit.errors import ConfigError
from trainkit.losses.dpo import bradley_terry_loss
from trainkit.optim.param_groups import backbone_parameters
from trainkit.tasks import RewardModule
from trainkit.tasks.reward import last_token

REWARD = REPO / "configs" / "language" / "reward.yaml"


def test_the_reward_is_read_at_the_last_non_padding_token_on_either_side() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_token(mask).tolist() == [2, 4, 4, 1]
    model = RewardModule(model_config=TINY).eval()
    rows = [[5, 9, 33, 41], [7, 8], [100, 101, 102]]
    masks = [[1] * len(r) for r in rows]
    with torch.no_grad():
        right = model(pad(rows, 0), pad(masks, 0))
        left = model(pad(rows, 0, left=True), pad(masks, 0, left=True))
        alone = torch.stack([model(torch.tensor([r]), torch.tensor([m]))[0] for r, m in zip(rows, masks, strict=True)])
        # the padding's own tokens change nothing: another pad id gives the same rewards
        other_pad = model(pad(rows, 77), pad(masks, 0))
    torch.testing.assert_close(right, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(other_pad, alone, rtol=1e-4, atol=1e-5)
    # and it is the last token's state: changing the first token of row 0 moves its reward, padding does not
    assert len(set(alone.tolist())) == 3


def test_extra_layers_are_the_head_and_the_language_model_below_them_the_backbone() -> None:
    model = RewardModule(model_config=TINY, extra_layers=1)
    layers = model.model.model.layers
    assert len(layers) == model.model.config.num_hidden_layers == 2
    frozen = {id(p) for p in backbone_parameters(model.backbone_and_head())}  # what --freeze.epochs -1 freezes
    assert frozen == {id(p) for p in model.model.parameters()} - {id(p) for p in layers[1].parameters()}
    assert RewardModule(model_config=TINY).backbone_and_head()[1] is None
    with pytest.raises(ConfigError, match="extra_layers=-1"):
        RewardModule(model_config=TINY, extra_layers=-1)


def test_bradley_terry_loss_matches_a_hand_value() -> None:
    chosen, rejected = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 1.5, -1.0])
    # -log sigmoid(d) = log(1 + e^-d) for d = 1, -1, 0
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1)) + math.log(2)) / 3
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected)


@pytest.mark.slow  # ~3 s idle, 18 s on the shared machine: eight training steps
def test_a_fresh_reward_model_starts_near_log_2_and_learns_the_pairs() -> None:
    model = RewardModule(model_config=TINY)
    data = PreferenceDataModule(**DATA)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    loss, chosen, rejected = model.step(batch, "val")
    # the small random head scores every answer near 0, and moves them apart (a zero head gives the trunk no gradient)
    assert loss.item() == pytest.approx(math.log(2), abs=0.05) and len(chosen) == len(rejected) == 8
    assert not torch.equal(chosen, rejected)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(8):  # the same batch: the loss must fall, the chosen answers pull ahead
        optimizer.zero_grad()
        loss, chosen, rejected = model.step(batch, "train")
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6 and (chosen > rejected).float().mean() >= 0.75  # 0.55 and 7/8 measured


@pytest.mark.slow
def test_reward_model_through_the_cli(workdir: Path, trainkit) -> None:
    runs = workdir / "runs"
    fresh = [*TINY_CLI, "--model.init_args.init_from", "null", "--trainer.limit_val_batches", "1"]
    assert trainkit("fit", "--config", REWARD, *fresh, "--runs_dir", runs) == 0
    run = runs / "lm_reward" / "version_0"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    tested = next(r for r in rows if r.get("test/reward_acc"))
    assert {"test/loss", "test/margin", "test/chosen_reward", "test/rejected_reward"} <= set(tested)
    assert 0 <= float(tested["test/reward_acc"]) <= 1
    best = run / "checkpoints" / "best.ckpt"
    assert trainkit("predict", "--config", REWARD, *fresh, "--runs_dir", runs, "--ckpt_path", best) == 0
    lines = next((run / "predict").rglob("rewards.jsonl")).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 32 and {"prompt", "response", "reward"} == set(rows[0])  # 16 pairs, chosen and rejected
    assert rows[0]["prompt"].endswith("=") and isinstance(rows[0]["reward"], float)
