"""Model factories: timm backbones by name and the heads tasks put on them."""

from trainkit.models.backbone import create_backbone

__all__ = ["create_backbone"]
