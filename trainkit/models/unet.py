"""U-Net: a timm encoder (`features_only`) and a light decoder that upsamples through its skip connections.

Why timm and not segmentation_models_pytorch: timm is already a dependency, offers every encoder by name (tiny
`test_*` ones included, for fast tests), and `features_only` gives the multi-scale maps a U-Net needs; the decoder is
a few conv blocks, not worth another package.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainkit.models.backbone import create_backbone


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU, the U-Net decoder unit."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Per-pixel logits (B, out_channels, H, W) for (B, in_chans, H, W) images of any size."""

    def __init__(
        self,
        encoder: str = "resnet18",
        out_channels: int = 2,
        in_chans: int = 3,
        pretrained: bool = False,
        decoder_width: int = 32,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Args:
        encoder: timm model name used as the encoder.
        out_channels: logit channels (classes, or 1 for a binary mask).
        in_chans: image channels.
        pretrained: load timm's pretrained encoder weights (downloads; needs internet or a filled cache).
        decoder_width: channels of the finest decoder block; each coarser block doubles it (capped at 256).
        encoder_kwargs: extra arguments for timm.create_model.
        """
        super().__init__()
        self.encoder = create_backbone(
            encoder, in_chans=in_chans, pretrained=pretrained, features_only=True, **(encoder_kwargs or {})
        )
        channels = self.encoder.feature_info.channels()
        widths = [min(256, decoder_width * 2**level) for level in range(len(channels))]
        # Block i fuses the upsampled output of the level below it with encoder map i (finest = 0).
        self.blocks = nn.ModuleList(
            _conv_block((channels[i + 1] if i + 1 == len(channels) - 1 else widths[i + 1]) + channels[i], widths[i])
            for i in range(len(channels) - 1)
        )
        # Encoders downsample at least 2x before their first map, so one more block runs at full resolution.
        self.full_res = _conv_block(widths[0] + in_chans, widths[0])
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = self.encoder(x)
        y = features[-1]
        for i in reversed(range(len(self.blocks))):
            skip = features[i]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self.blocks[i](torch.cat([y, skip], dim=1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.full_res(torch.cat([y, x], dim=1)))
