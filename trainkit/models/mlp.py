"""A plain MLP for tabular features: Linear -> norm -> activation -> dropout blocks, then a linear output."""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Module):
    """Map (B, in_features) to (B, out_features) through `hidden_sizes` GELU blocks with LayerNorm and dropout."""

    def __init__(
        self, in_features: int, out_features: int = 1, hidden_sizes: list[int] | None = None, dropout: float = 0.0
    ) -> None:
        """Args:
        in_features: input feature count.
        out_features: output count.
        hidden_sizes: widths of the hidden layers (default [128, 128]).
        dropout: dropout after each hidden layer.
        """
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        layers: list[nn.Module] = []
        width = in_features
        for hidden in [128, 128] if hidden_sizes is None else hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
