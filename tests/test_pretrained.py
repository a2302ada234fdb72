"""Local pretrained weights: loaded by name and by order, a code-running pickle refused, a mismatch in one line, the
head fitted to num_classes; through `trainkit fit` too."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from tests.conftest import TINY_DIGITS
from trainkit.errors import ConfigError
from trainkit.pretrained import load_pretrained, pretrained_backbone


@pytest.fixture
def source() -> dict[str, torch.Tensor]:
    """The weights of a timm test_efficientnet with a 1000-class head, as a pretrained file would hold them."""
    return timm.create_model("test_efficientnet", num_classes=1000).state_dict()


def _body_equal(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    for (key, value), theirs in zip(model.state_dict().items(), weights.values(), strict=False):
        if not key.startswith("classifier."):
            assert torch.equal(value, theirs), key


def test_loads_by_name_and_fits_the_head(tmp_path: Path, source: dict[str, torch.Tensor]) -> None:
    torch.save(source, tmp_path / "w.pth")
    model = pretrained_backbone("test_efficientnet", str(tmp_path / "w.pth"), num_classes=3)
    _body_equal(model, source)
    assert model.get_classifier().weight.shape[0] == 3  # the head was replaced, not loaded


def test_loads_renamed_tensors_by_order(tmp_path: Path, source: dict[str, torch.Tensor]) -> None:
    renamed = OrderedDict((f"_layer{i}", value) for i, value in enumerate(source.values()))
    torch.save(renamed, tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="no key matches the model by name.*pretrained_remap order"):
        pretrained_backbone("test_efficientnet", str(tmp_path / "w.pt"), num_classes=3)
    model = pretrained_backbone("test_efficientnet", str(tmp_path / "w.pt"), "order", num_classes=3)
    _body_equal(model, source)
    features = pretrained_backbone("test_efficientnet", str(tmp_path / "w.pt"), "order", num_classes=0)
    _body_equal(features, source)  # a headless model takes the body and leaves the file's head


def test_a_cache_folder_and_safetensors(tmp_path: Path, source: dict[str, torch.Tensor]) -> None:
    folder = tmp_path / "models--timm--test" / "snapshots" / "abc"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.items()}, folder / "model.safetensors")
    model = pretrained_backbone("test_efficientnet", str(tmp_path / "models--timm--test"), num_classes=1000)
    assert torch.equal(model.get_classifier().weight, source["classifier.weight"])


class _RunsCode:
    def __reduce__(self):  # noqa: ANN204
        return os.system, ("touch ran",)


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path, source: dict[str, torch.Tensor],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({**source, "extra": _RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(ConfigError, match="refused.*would run code") as error:
        pretrained_backbone("test_efficientnet", str(tmp_path / "evil.pth"), num_classes=3)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "ran").exists()


def test_a_mismatch_is_one_line_naming_the_keys(tmp_path: Path) -> None:
    torch.save(timm.create_model("test_efficientnet", in_chans=1).state_dict(), tmp_path / "gray.pth")
    model = timm.create_model("test_efficientnet", num_classes=3)
    with pytest.raises(ConfigError) as error:
        load_pretrained(model, str(tmp_path / "gray.pth"))
    message = str(error.value)
    assert "\n" not in message and "conv_stem.weight (24, 1, 3, 3) vs conv_stem.weight (24, 3, 3, 3)" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_pretrained(model, str(tmp_path / "nothing.pth"))
    with pytest.raises(ConfigError, match="package no_such_weights_pkg is not installed"):
        load_pretrained(model, "pkg://no_such_weights_pkg")


@pytest.mark.slow
def test_fit_with_local_weights(workdir: Path, trainkit) -> None:  # noqa: ANN001
    weights = timm.create_model("test_resnet", in_chans=1).state_dict()
    torch.save(weights, workdir / "w.pth")
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.pretrained", workdir / "w.pth",
                    "--freeze.epochs", "-1", "--test_after_fit", "false") == 0
    saved = torch.load(next(workdir.rglob("last.ckpt")), weights_only=True)["state_dict"]
    assert torch.equal(saved["net.conv1.0.weight"], weights["conv1.0.weight"])  # loaded, and frozen through 4 steps
    assert not torch.equal(saved["net.fc.weight"][:1], weights["fc.weight"][:1])  # the new 10-class head trained
