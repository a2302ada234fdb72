"""Model factories: timm backbones by name and the heads tasks put on them."""

from trainkit.models.backbone import create_backbone
from trainkit.models.embedding import EmbeddingHead
from trainkit.models.mlp import MLP
from trainkit.models.unet import UNet

__all__ = ["MLP", "EmbeddingHead", "UNet", "create_backbone"]
