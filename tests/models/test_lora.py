"""apply_lora / merge_lora on a tiny timm ViT: what trains, and that merging keeps the outputs."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.models.lora import LoraSettings, apply_lora, merge_lora, parameter_counts

TARGETS = ["qkv", "proj", "fc1", "fc2"]


def _vit() -> nn.Module:
    return timm.create_model("test_vit", num_classes=10, in_chans=1, img_size=16, patch_size=4)


def test_only_adapters_and_train_modules_are_trainable() -> None:
    model = _vit()
    total_before = sum(p.numel() for p in model.parameters())
    apply_lora(model, LoraSettings(r=2, target_modules=TARGETS, train_modules=["head"]))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name or name.startswith("head.") for name in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    n_trainable, n_total = parameter_counts(model)
    adapters = sum(p.numel() for name, p in model.named_parameters() if ".lora_" in name)
    assert n_total == total_before + adapters
    assert n_trainable == adapters + model.head.weight.numel() + model.head.bias.numel()


def test_merge_keeps_outputs_and_removes_adapter_layers() -> None:
    model = _vit().eval()
    apply_lora(model, LoraSettings(r=2, lora_alpha=4, target_modules=TARGETS))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:  # lora_B starts at zero: give the adapters a real effect to merge
                p.normal_(std=0.5)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        adapted = model(x)
        plain = _vit().eval()
        merged = merge_lora(model)
        assert not any(".lora_" in name for name, _ in merged.named_parameters())
        assert set(merged.state_dict()) == set(plain.state_dict())
        assert torch.allclose(merged(x), adapted, atol=1e-5)


def test_bad_targets_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="target_modules"):
        apply_lora(_vit(), LoraSettings(r=2, target_modules=[]))
    with pytest.raises(ConfigError, match="match no layer"):
        apply_lora(_vit(), LoraSettings(r=2, target_modules=["no_such_layer"]))
    with pytest.raises(ConfigError, match="no module named 'classifier'"):
        apply_lora(_vit(), LoraSettings(r=2, target_modules=TARGETS, train_modules=["classifier"]))
