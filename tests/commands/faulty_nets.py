"""Networks with an injected fault, importable by class_path."""

from torch import Tensor, nn


class FailsAtStep(nn.Module):
    """16x16 digits -> 10 logits, until its forward pass number `at_call` raises (an injected fault)."""

    def __init__(self, at_call: int = 3) -> None:
        super().__init__()
        self.layer = nn.Linear(256, 10)
        self.at_call, self.calls = at_call, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.calls == self.at_call:
            raise RuntimeError("injected fault at the third batch")
        return self.layer(x.flatten(1))
