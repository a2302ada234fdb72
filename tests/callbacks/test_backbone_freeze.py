"""Backbone freezing on a real timm ResNet: bit-identical while frozen, trained at its own LR once unfrozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.nn.modules.batchnorm import _BatchNorm

from trainkit.callbacks import BackboneFreeze
from trainkit.data import DigitsDataModule
from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.tasks import ClassificationModule


def backbone_state(model: ClassificationModule) -> dict[str, torch.Tensor]:
    """Parameters and buffers (BatchNorm running statistics included) of the network outside its head."""
    return {k: v.detach().clone() for k, v in model.net.state_dict().items() if not k.startswith("fc.")}


class Watch(Callback):
    """Backbone state at the end of each epoch, and whether its BatchNorm layers were training at each batch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.bn_training: list[set[bool]] = []
        self.head_lrs: list[float] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        norms = [m for name, m in pl_module.net.named_modules() if isinstance(m, _BatchNorm)]
        self.bn_training.append({m.training for m in norms})

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.states.append(backbone_state(pl_module))


def make(epochs: int, scheduler: str = "cosine") -> tuple[ClassificationModule, DigitsDataModule, BackboneFreeze]:
    model = ClassificationModule(
        backbone="test_resnet", num_classes=10, in_chans=1,
        optimizer=OptimizerConfig(name="adamw", lr=1e-2, backbone_lr_scale=0.1),
        scheduler=SchedulerConfig(name=scheduler),
    )
    return model, DigitsDataModule(batch_size=32, image_size=16), BackboneFreeze(epochs=epochs)


def trainer(max_epochs: int, callbacks: list[Callback], root: Path | None = None) -> Trainer:
    return Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=root is not None, default_root_dir=root,
        limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0, callbacks=callbacks,
    )


@pytest.mark.slow
def test_frozen_epochs_are_bit_identical_then_the_backbone_trains_and_resumes(tmp_path: Path) -> None:
    model, data, freeze = make(epochs=2)
    initial = backbone_state(model)
    watch = Watch()
    every_epoch = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    run = trainer(3, [freeze, watch, every_epoch], root=tmp_path)
    run.fit(model, datamodule=data)

    for epoch in (0, 1):  # frozen: every weight and running statistic unchanged, bit for bit
        assert all(torch.equal(watch.states[epoch][k], initial[k]) for k in initial), epoch
    changed = [k for k in initial if not torch.equal(watch.states[2][k], initial[k])]
    assert any(k.endswith("conv1.0.weight") for k in changed) and any("running_mean" in k for k in changed)
    assert watch.bn_training[:6] == [{False}] * 6  # BatchNorm in eval during the 2 frozen epochs x 3 batches
    assert watch.bn_training[6:] == [{True}] * 3

    optimizer = run.optimizers[0]
    head_lr = optimizer.param_groups[0]["lr"]
    backbone_params = {id(p) for k, p in model.net.named_parameters() if not k.startswith("fc.")}
    joined = [g for g in optimizer.param_groups if all(id(p) in backbone_params for p in g["params"])]
    assert len(joined) == 2  # with and without weight decay
    assert sum(len(g["params"]) for g in joined) == len(backbone_params)
    for group in joined:  # the backbone's own LR: 0.1 x the head's, on the same schedule
        assert group["lr"] == pytest.approx(0.1 * head_lr)
        assert group["initial_lr"] == pytest.approx(1e-3)

    # Resumed after unfreezing: BaseFinetuning brings the backbone's param groups back and it keeps training.
    groups, at_checkpoint = len(optimizer.param_groups), watch.states[2]
    model, data, freeze = make(epochs=2)
    resumed = trainer(4, [freeze], root=tmp_path)
    resumed.fit(model, datamodule=data, ckpt_path=tmp_path / "epoch=2.ckpt")
    assert len(resumed.optimizers[0].param_groups) == groups
    assert all(p.requires_grad for p in model.net.parameters())
    assert not all(torch.equal(backbone_state(model)[k], at_checkpoint[k]) for k in at_checkpoint)


@pytest.mark.slow
def test_kept_frozen_for_the_whole_run() -> None:
    model, data, freeze = make(epochs=-1)
    initial = backbone_state(model)
    trainer(2, [freeze]).fit(model, datamodule=data)
    assert all(torch.equal(backbone_state(model)[k], initial[k]) for k in initial)
    assert all(not p.requires_grad for k, p in model.net.named_parameters() if not k.startswith("fc."))


def test_freezing_needs_a_backbone() -> None:
    from tests.optim._tiny import TinyTask, loader

    run = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  callbacks=[BackboneFreeze(epochs=1)])
    with pytest.raises(ConfigError, match="--freeze.epochs needs a backbone/head split"):
        run.fit(TinyTask(), train_dataloaders=loader())


def test_unfreezing_mid_run_is_refused_under_ddp() -> None:
    model, _, _ = make(epochs=2)
    ddp = Trainer(strategy="ddp", devices=2, accelerator="cpu", logger=False)  # built, not launched
    with pytest.raises(ConfigError, match="--freeze.epochs 2 unfreezes the backbone mid-run, which DDP cannot"):
        BackboneFreeze(epochs=2).setup(ddp, model, "fit")
    BackboneFreeze(epochs=-1).setup(ddp, model, "fit")  # frozen throughout is fine: nothing joins later
    assert not any(p.requires_grad for k, p in model.net.named_parameters() if not k.startswith("fc."))


@pytest.mark.slow
def test_progressive_unfreezing_through_fit(workdir: Path, trainkit) -> None:  # noqa: ANN001
    """--freeze.stage_epochs 1 on test_resnet (stages: stem, layer1..layer4): epoch 0 the head alone, epoch 1 layer4
    joins at its own LR; after 2 epochs every other stage (BatchNorm statistics too) is the file's, bit for bit."""
    from tests.conftest import TINY_DIGITS

    weights = timm.create_model("test_resnet", in_chans=1).state_dict()
    torch.save(weights, workdir / "w.pth")
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.pretrained", workdir / "w.pth", "--freeze.stage_epochs",
                    "1", "--model.init_args.optimizer.backbone_lr_scale", "0.1", "--model.init_args.scheduler.name",
                    "cosine", "--trainer.max_epochs", "2", "--test_after_fit", "false") == 0
    checkpoint = torch.load(next(workdir.rglob("last.ckpt")), weights_only=True)
    state = checkpoint["state_dict"]
    kept = [k for k in weights if not k.startswith(("layer4.", "fc.")) and "num_batches" not in k]
    assert all(torch.equal(state[f"net.{k}"], weights[k]) for k in kept)
    assert not torch.equal(state["net.layer4.0.conv1.weight"], weights["layer4.0.conv1.weight"])
    assert not torch.equal(state["net.layer4.0.bn1.running_mean"], weights["layer4.0.bn1.running_mean"])
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    layer4 = sum(1 for k in weights if k.startswith("layer4.") and "running" not in k and "num_batches" not in k)
    assert sum(len(g["params"]) for g in groups) == 2 + layer4  # the head's 2 tensors, then layer4's
    assert [g["initial_lr"] for g in groups[-2:]] == pytest.approx([0.1 * groups[0]["initial_lr"]] * 2)


def test_stage_epochs_needs_a_timm_backbone_and_is_one_recipe() -> None:
    from tests.optim._tiny import TinyTask, loader

    with pytest.raises(ConfigError, match="two recipes; set one of them"):
        BackboneFreeze(epochs=2, stage_epochs=1)
    run = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  callbacks=[BackboneFreeze(stage_epochs=1)])
    with pytest.raises(ConfigError, match="needs a backbone/head split|needs a timm backbone"):
        run.fit(TinyTask(), train_dataloaders=loader())
