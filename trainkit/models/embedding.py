"""Embedding head: features -> a unit-length vector of chosen size, so nearest neighbours are cosine neighbours."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class EmbeddingHead(nn.Module):
    """Linear projection of backbone features to `embedding_dim`, L2-normalised."""

    def __init__(self, in_features: int, embedding_dim: int = 128, normalize: bool = True) -> None:
        """Args:
        in_features: size of the backbone's pooled features.
        embedding_dim: size of the embedding.
        normalize: scale embeddings to unit length (what cosine and triplet-margin losses assume).
        """
        super().__init__()
        self.proj = nn.Linear(in_features, embedding_dim)
        self.normalize = normalize

    def forward(self, features: Tensor) -> Tensor:
        z = self.proj(features)
        return F.normalize(z, dim=-1) if self.normalize else z
