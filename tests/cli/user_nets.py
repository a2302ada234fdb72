"""A user's own network, importable by class_path from the tests package."""

from torch import Tensor, nn


class TinyDigitsNet(nn.Module):
    """16x16 grayscale digits -> 10 logits."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(256, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TinyTeacher(nn.Module):
    """Any-size grayscale digits -> 10 logits: a stand-in teacher for shipped distillation configs in tests."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
