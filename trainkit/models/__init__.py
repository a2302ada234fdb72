"""Model factories: timm backbones by name and the heads tasks put on them."""

from trainkit.models.backbone import create_backbone
from trainkit.models.embedding import EmbeddingHead

__all__ = ["EmbeddingHead", "create_backbone"]
