"""The shared part of EMA and SWA: Lightning's WeightAveraging, switched off until configured, fixed for test."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from trainkit.errors import ConfigError


class WeightAverage(WeightAveraging):
    """Lightning's WeightAveraging (validation, the saved checkpoint and the model after fit use the average), with
    an off switch for CLI groups and three fixes:

    - nothing is swapped in or saved before the first update (the average would still be the initial weights);
    - outside fit (`trainer.test` after fit, `trainkit test`) the checkpoint's `state_dict`, which holds the
      averaged weights, is what gets evaluated: Lightning would otherwise restore the raw training weights;
    - no warnings for loading such a checkpoint outside fit, which is the normal way to test it.
    """

    def __init__(self, enabled: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enabled = enabled
        """Whether averaging is configured; a disabled callback is not handed to the Trainer."""
        self._swapped = False  # whether validation runs on the average and must swap back

    def _active(self, trainer: Trainer) -> bool:
        return (
            self._average_model is not None
            and trainer.state.fn == TrainerFn.FITTING
            and int(self._average_model.n_averaged) > 0
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        others = [type(c).__name__ for c in trainer.callbacks if isinstance(c, WeightAverage)]
        if len(others) > 1:
            raise ConfigError(f"{' and '.join(others)} are both on; average the weights one way: keep one of them")
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active(trainer):
            super().on_train_end(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active(trainer):
            self._swapped = True
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._swapped:
            self._swapped = False
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._active(trainer):
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None and trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
