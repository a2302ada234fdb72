"""A user's own network, importable by class_path from the tests package."""

import torch
from torch import Tensor, nn


class TinyDigitsNet(nn.Module):
    """16x16 grayscale digits -> 10 logits."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(256, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TinyTeacher(nn.Module):
    """Any-size grayscale digits -> 10 logits: a stand-in teacher for shipped distillation configs in tests.

    It knows the digits, as the trained teacher a config expects does: a linear read-out of the 8x8 pooled image,
    solved by least squares on scikit-learn's digits (milliseconds). A random teacher has the student learn noise,
    whose eval-mode val loss rises while its train loss falls: a real "val flat" on a short run."""

    def __init__(self) -> None:
        super().__init__()
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = torch.as_tensor(digits.images, dtype=torch.float64).flatten(1)
        pixels = (pixels - pixels.mean()) / pixels.std()  # DigitsDataModule's standardisation, before pooling
        targets = 10.0 * torch.nn.functional.one_hot(torch.as_tensor(digits.target), 10).double()  # confident
        inputs = torch.cat([pixels, torch.ones(len(pixels), 1, dtype=torch.float64)], dim=1)
        solution = torch.linalg.lstsq(inputs, targets).solution.float()
        linear = nn.Linear(64, 10)
        with torch.no_grad():
            linear.weight.copy_(solution[:64].T)
            linear.bias.copy_(solution[64])
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
