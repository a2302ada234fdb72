"""Semantic segmentation: a U-Net on a timm encoder (or any network giving per-pixel logits), CE + Dice loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from trainkit.errors import ConfigError
from trainkit.losses import BCEDiceLoss, CEDiceLoss
from trainkit.models.unet import UNet
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.pretrained import load_pretrained
from trainkit.reports.segmentation import SegmentationReport
from trainkit.tasks.base import TaskModule


class SegmentationModule(TaskModule):
    """Label every pixel with one of `num_classes`; logs mean IoU and Dice, and per-class IoU/Dice on val/test."""

    matched_data_attributes = ("num_classes", "in_chans")
    report_writer = SegmentationReport

    def __init__(
        self,
        encoder: str | nn.Module = "resnet18",
        num_classes: int = 2,
        in_chans: int | None = 3,
        binary: bool = False,
        pretrained: bool | str = False,
        pretrained_remap: Literal["name", "order"] = "name",
        decoder_width: int = 32,
        encoder_kwargs: dict[str, Any] | None = None,
        dice_weight: float = 1.0,
        ignore_index: int | None = None,
        class_names: list[str] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Args:
        encoder: a timm model name, the encoder of trainkit's U-Net; or a whole network (class_path) giving logits
            (B, num_classes, H, W), or (B, 1, H, W) when binary.
        num_classes: classes in the masks, background included (2 for a binary mask); must match the data.
        in_chans: image channels of the U-Net; ignored for a given network.
        binary: predict one sigmoid channel (foreground vs background, needs num_classes 2) trained with BCE + Dice.
        pretrained: true: timm's pretrained encoder weights (downloads); or a local weights file, a folder holding one,
            or `pkg://<module>` (see docs/transfer.md); loaded weights-only.
        pretrained_remap: `name` matches the file's keys by name; `order` by position (same order, other names).
        decoder_width: channels of the finest U-Net decoder block (coarser ones double it).
        encoder_kwargs: extra arguments for timm.create_model.
        dice_weight: weight of the Dice term beside cross-entropy (0 gives plain CE/BCE).
        ignore_index: mask value of unlabeled pixels, left out of the loss and the metrics (e.g. 255).
        class_names: names in per-class metric keys (`val/iou_circle`); by default the data's, else the indices.
        loss: a loss module taking (logits, masks) instead of the CE/BCE + Dice default.
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["loss"] + (["encoder"] if isinstance(encoder, nn.Module) else []))
        if binary and num_classes != 2:
            raise ConfigError(f"binary segmentation has 2 classes, got num_classes={num_classes}; set num_classes 2")
        self.num_classes, self.binary, self.ignore_index = num_classes, binary, ignore_index
        self.class_names = class_names
        out_channels = 1 if binary else num_classes
        if isinstance(encoder, nn.Module):
            self.net, self.in_chans = encoder, None
        else:
            self.in_chans = in_chans
            self.net = UNet(encoder, out_channels, in_chans or 3, pretrained is True, decoder_width, encoder_kwargs)
            if isinstance(pretrained, str):
                load_pretrained(self.net.encoder, pretrained, pretrained_remap)
        default_loss = BCEDiceLoss if binary else CEDiceLoss
        self.criterion = loss if loss is not None else default_loss(dice_weight=dice_weight, ignore_index=ignore_index)
        self.init_metrics(self._metrics("macro"))

    def _metrics(self, average: str | None) -> dict[str, Any]:
        """IoU (Jaccard) and Dice (pixel F1) over class-index masks; `macro` averages classes, None keeps each."""
        common = {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "average": average}
        return {"miou": MulticlassJaccardIndex(**common), "dice": MulticlassF1Score(**common)}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        names = self.class_names or getattr(datamodule, "class_names", None) or range(self.num_classes)
        per_class = {key.removeprefix("m"): metric for key, metric in self._metrics(None).items()}  # iou_<class>
        self.init_breakdown(per_class, [str(name) for name in names])

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def classes_of(self, logits: Tensor) -> Tensor:
        """Class-index masks (B, H, W) from logits."""
        return (logits[:, 0] > 0).long() if self.binary else logits.argmax(dim=1)

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        images, masks = batch
        logits = self(images)
        preds = self.classes_of(logits)
        return self.criterion(logits, masks), preds, masks

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self.classes_of(self(images)).to(torch.uint8)

    def write_predictions(self, predictions: list[Tensor], out_dir: Path) -> Path:
        """Write one palette PNG per image whose pixel values are the predicted classes: named after the input file
        with `--source` (`masks/photo_1.png`), else by index (`masks/00000.png`)."""
        folder = out_dir / "masks"
        folder.mkdir(parents=True, exist_ok=True)
        keys = self.prediction_keys()
        used: set[str] = set()
        for index, mask in enumerate(m for batch in predictions for m in batch):
            name = Path(keys[index]).stem if keys is not None else f"{index:05d}"
            name = name if name not in used else f"{name}_{index}"  # same file name in two sub-folders
            used.add(name)
            _save_mask_png(mask, folder / f"{name}.png")
        return folder


def _save_mask_png(mask: Tensor, path: Path) -> None:
    """Write a class-index mask as a palette PNG: the pixel values are the classes, the palette makes them visible."""
    from PIL import Image

    image = Image.fromarray(mask.to(torch.uint8).cpu().numpy(), mode="P")
    generator = torch.Generator().manual_seed(0)  # fixed palette: class k has the same colour in every file
    palette = torch.randint(40, 256, (256, 3), generator=generator)
    palette[0] = 0  # background black
    image.putpalette(palette.flatten().tolist())
    image.save(path)
