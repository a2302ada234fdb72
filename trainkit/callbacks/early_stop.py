"""Early stopping that is off until a patience is given (`--early_stopping.patience 5`), and the best weights restored
when fit ends (`--early_stopping.restore_best true`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping

from trainkit.checkpoints import load_checkpoint


class EarlyStop(EarlyStopping):
    """Lightning's EarlyStopping on the run's monitored metric; inactive while `patience` is None."""

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: Literal["min", "max"] = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = False,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            monitor: metric to watch (set once with the top-level --monitor).
            mode: whether lower (min) or higher (max) is better.
            patience: validation checks with no improvement before stopping; None disables early stopping.
            min_delta: smallest change that counts as an improvement.
            restore_best: when fit ends (stopped early or not), load the best checkpoint's weights into the model,
                so what follows in this process (test_after_fit, the summary, your own code) uses them.
        """
        super().__init__(monitor=monitor, mode=mode, patience=patience or 0, min_delta=min_delta)
        self.stops = patience is not None
        self.restore_best = restore_best
        self.enabled = self.stops or restore_best
        """Whether early stopping or restoring is asked for; a disabled callback is not handed to the Trainer."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stops:
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stops:
            super().on_train_epoch_end(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """After the checkpoints are written (last.ckpt keeps the last weights), the model takes the best ones."""
        if self.restore_best:
            line = restore_best_weights(trainer, pl_module)
            if trainer.is_global_zero:
                print(f"trainkit: {line}", flush=True)


def restore_best_weights(trainer: Trainer, pl_module: LightningModule) -> str:
    """Load the best checkpoint's weights into `pl_module`; returns the line that says what was done."""
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "")
    if not best:
        return "restore_best: no best checkpoint was written (no validation, or checkpointing off); kept the last"
    if not Path(best).is_file():
        return f"restore_best: {best} is a sharded folder; kept the last weights (test it with --ckpt_path best)"
    saved = load_checkpoint(best)
    pl_module.load_state_dict(saved["state_dict"])
    score = getattr(checkpoint, "best_model_score", None)
    value = f", {checkpoint.monitor}={float(score):.4f}" if score is not None else ""
    return (f"restored the best weights (epoch {saved.get('epoch', 0) + 1} of {trainer.current_epoch}{value}) "
            f"from {best}")
