"""Exponential moving average of the weights, used for validation, test and the saved checkpoints."""

from __future__ import annotations

from torch import Tensor

from trainkit.callbacks.weight_average import WeightAverage
from trainkit.errors import ConfigError


class EMA(WeightAverage):
    """Weight EMA (`--ema.decay 0.999`), off by default; works for every task since it only touches the weights.

    Built on Lightning's WeightAveraging rather than timm's ModelEmaV3: Lightning's callback already swaps the
    average in for validation, writes it as the checkpoint's `state_dict` (so `--ckpt_path best` tests the EMA
    weights) and keeps the raw weights for resuming; ModelEmaV3 would need all that glue written here. timm's warmup
    rule is kept: decay_t = min(decay, 1 - (1 + t) ** -warmup_power) at update t.
    """

    def __init__(
        self,
        decay: float | None = None,
        warmup_power: float | None = 0.75,
        every_n_steps: int = 1,
        start_step: int = 0,
        device: str | None = None,
    ) -> None:
        """Set up the EMA; it stays off while `decay` is None.

        Args:
            decay: weight of the old average per update (0.999 ~ averages the last 1000 steps); None turns EMA off.
            warmup_power: ramp the decay up as 1 - (1 + t)^-power so early, random weights fade fast (timm's rule;
                3/4 suits runs of a few thousand steps, 2/3 longer ones); None uses `decay` from the first update.
            every_n_steps: update the average every N optimizer steps.
            start_step: first optimizer step that updates the average.
            device: keep the average on this device (e.g. cpu to save accelerator memory); default the model's.
        """
        if decay is not None and not 0.0 < decay < 1.0:
            raise ConfigError(f"ema.decay={decay} must be in (0, 1), e.g. 0.999; leave it unset to turn EMA off")
        self.decay, self.warmup_power = decay, warmup_power
        self.every_n_steps, self.start_step = max(1, every_n_steps), start_step
        super().__init__(enabled=decay is not None, device=device, avg_fn=self._average)

    def decay_at(self, num_averaged: int) -> float:
        """Decay of the update that follows `num_averaged` earlier updates."""
        assert self.decay is not None
        if self.warmup_power is None:
            return self.decay
        return min(self.decay, 1.0 - (1.0 + num_averaged) ** -self.warmup_power)

    def _average(self, average: Tensor, current: Tensor, num_averaged: Tensor) -> Tensor:
        decay = self.decay_at(int(num_averaged))
        if not average.is_floating_point():  # counters such as BatchNorm's num_batches_tracked follow the model
            return current
        return average.lerp(current, 1.0 - decay)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step and step_idx % self.every_n_steps == 0
