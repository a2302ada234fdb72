"""SegmentationModule: real training steps, metrics by hand, and `trainkit fit`, `test`, `predict` via the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tests.conftest import REPO, tiny_argv
from tests.metrics_csv import last_values
from trainkit.data.shapes import render_shapes
from trainkit.errors import ConfigError
from trainkit.tasks import SegmentationModule

SHAPES = REPO / "configs" / "segmentation" / "shapes.yaml"
TINY_SHAPES = tiny_argv(
    SHAPES, "--model.init_args.encoder", "test_resnet", "--model.init_args.decoder_width", "8",
    "--data.init_args.num_train", "16", "--data.init_args.num_val", "8", "--data.init_args.num_test", "8",
    "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8",
)



class FixedLogits(nn.Module):
    """A 'network' whose logits are given, so metric values can be worked out by hand."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits + self.dummy


def test_metrics_by_hand() -> None:
    # 1 x 2 x 3 image, 3 classes. Class 0: truth 2 px, predicted 1 of them: IoU 1/2, Dice 2/3. Class 1: truth 3 px,
    # predicted those and 1 more: IoU 3/4, Dice 6/7. Class 2: one pixel, right: IoU 1, Dice 1.
    truth = torch.tensor([[[0, 0, 1], [1, 1, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 1, 2]]])
    logits = torch.nn.functional.one_hot(pred, 3).movedim(-1, 1).float()
    model = SegmentationModule(encoder=FixedLogits(logits), num_classes=3, class_names=["bg", "a", "b"])
    _, preds, target = model.step((torch.zeros(1, 3, 2, 3), truth), "val")
    model.val_metrics.update(preds, target)
    values = model.val_metrics.compute()
    assert values["val/miou"].item() == pytest.approx((1 / 2 + 3 / 4 + 1) / 3)
    assert values["val/dice"].item() == pytest.approx((2 / 3 + 6 / 7 + 1) / 3)


def test_overfits_a_batch() -> None:
    """A few dozen real steps on 4 shapes images: the U-Net must learn them (IoU well above chance)."""
    images, masks = render_shapes(4, image_size=32, seed=1)
    images = (images - 0.5) / 0.25
    model = SegmentationModule("test_resnet", num_classes=4, decoder_width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss, _, _ = model.step((images, masks), "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        _, preds, _ = model.step((images, masks), "train")
    model.train_metrics.update(preds, masks)
    assert model.train_metrics.compute()["train/miou"].item() > 0.6


def test_binary_mode_predicts_one_channel() -> None:
    model = SegmentationModule("test_resnet", num_classes=2, binary=True, decoder_width=8)
    images, masks = render_shapes(2, image_size=32, seed=0)
    loss, preds, _ = model.step((images, (masks > 0).long()), "train")
    assert model(images).shape == (2, 1, 32, 32)
    assert torch.isfinite(loss) and set(preds.unique().tolist()) <= {0, 1}


def test_binary_needs_two_classes() -> None:
    with pytest.raises(ConfigError, match="num_classes=3"):
        SegmentationModule("test_resnet", num_classes=3, binary=True)


@pytest.mark.slow
def test_cli_fit_test_predict(workdir: Path, trainkit) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_SHAPES, "--test_after_fit", "true") == 0
    run = workdir / "runs" / "shapes" / "version_0"
    assert (run / "checkpoints" / "best.ckpt").is_file()
    fitted = last_values(run / "metrics.csv")
    for key in ("val/miou", "val/dice", "val/iou_circle", "val/dice_triangle", "test/miou", "test/iou_background"):
        assert 0.0 <= float(fitted[key]) <= 1.0, key

    assert trainkit("test", *TINY_SHAPES, "--ckpt_path", "best") == 0
    tested = last_values(run / "test" / "version_0" / "metrics.csv")
    # The same checkpoint on the same generated test set gives the same mean IoU as the test at the end of fit.
    assert float(tested["test/miou"]) == pytest.approx(float(fitted["test/miou"]), abs=1e-6)

    assert trainkit("predict", *TINY_SHAPES, "--ckpt_path", "best") == 0
    pngs = sorted((run / "predict" / "version_0" / "masks").glob("*.png"))
    assert len(pngs) == 8
    from PIL import Image

    mask = np.array(Image.open(pngs[0]))
    assert mask.shape == (32, 32) and mask.max() < 4


@pytest.mark.slow
def test_cli_model_data_mismatch_is_one_line(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_SHAPES, "--data.init_args.binary", "true") == 2
    error = capsys.readouterr().err.strip()
    assert "num_classes=4" in error and "num_classes=2" in error and len(error.splitlines()) == 1
