"""The LoRA callback: only adapters (and the head) change in a real fit; checkpoints rebuild their adapters."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from tests.conftest import DIGITS_CONFIG, DOCTOR_OFF
from trainkit.callbacks import LoRA
from trainkit.data import DigitsDataModule
from trainkit.tasks import ClassificationModule

VIT = {"img_size": 16, "patch_size": 4}
TARGETS = ["qkv", "proj", "fc1", "fc2"]


class _Snapshot(Callback):
    """The weights as training starts, after the adapters were added."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.before = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_fit_changes_only_adapters_and_head(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    model = ClassificationModule(backbone="test_vit", num_classes=10, in_chans=1, backbone_kwargs=VIT)
    snapshot = _Snapshot()
    trainer = Trainer(
        max_epochs=1, limit_train_batches=4, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[LoRA(r=4, target_modules=TARGETS, train_modules=["head"]), snapshot],
    )
    with caplog.at_level(logging.INFO):
        trainer.fit(model, datamodule=DigitsDataModule(batch_size=32, image_size=16))
    assert "LoRA r=4:" in caplog.text and "trainable of" in caplog.text
    after = model.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, snapshot.before[k])}
    assert any(".lora_A." in k for k in changed) and any(".lora_B." in k for k in changed)
    assert {"net.head.weight", "net.head.bias"} <= changed
    assert all(".lora_" in k or k.startswith("net.head.") for k in changed), changed
    assert any(".base_layer." in k for k in after)  # the frozen base weights are there, unchanged


def test_checkpoint_rebuilds_adapters_and_merges(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    base = [
        "--config", DIGITS_CONFIG, "--model.init_args.backbone", "test_vit",
        "--model.init_args.backbone_kwargs", "{img_size: 16, patch_size: 4}", "--data.init_args.image_size", "16",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--test_after_fit", "false", *DOCTOR_OFF,
    ]
    lora = ["--lora.r", "4", "--lora.target_modules", "[qkv, proj, fc1, fc2]", "--lora.train_modules", "[head]"]
    assert trainkit("fit", *base, *lora) == 0
    best = workdir / "runs" / "digits" / "version_0" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    # No LoRA flags: the checkpoint says which adapters its weights need.
    assert trainkit("test", *base, "--ckpt_path", best) == 0
    adapted = _test_acc(capsys.readouterr().out)
    assert trainkit("lora-merge", best) == 0
    merged = best.with_name("best-merged.ckpt")
    state = torch.load(merged, map_location="cpu", weights_only=False)["state_dict"]
    assert not any(".lora_" in k or ".base_layer." in k for k in state)
    capsys.readouterr()
    # Even with the LoRA flags set, a merged checkpoint loads as plain weights, with the same result.
    assert trainkit("test", *base, *lora, "--ckpt_path", merged) == 0
    assert _test_acc(capsys.readouterr().out) == adapted


def _test_acc(out: str) -> str:
    """The test/acc cell of trainkit's results table."""
    return next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["test/acc"])
