"""Build model, data and trainer from `trainkit fit` flags for a command that must not create a run folder."""

from __future__ import annotations

from lightning.pytorch import Trainer
from lightning.pytorch.cli import SaveConfigCallback

QUIET_FLAGS = ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false"]
"""Appended to the user's flags: no loggers, no checkpoints (no runs/ folder, no best.ckpt from a probe)."""


def quiet_cli(argv: list[str]):  # noqa: ANN201  (TrainkitCLI; imported late so `--help` of a command stays quick)
    """TrainkitCLI(run=False) over `argv` with no logger, checkpoint or saved config."""
    from trainkit.cli import TrainkitCLI

    cli = TrainkitCLI(args=[*argv, *QUIET_FLAGS], run=False)
    cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, SaveConfigCallback)]
    return cli


def attach_for_fit(trainer: Trainer, model, datamodule) -> None:  # noqa: ANN001
    """Connect model and data to `trainer` as `fit` would, without running it, so that
    `trainer.estimated_stepping_batches` and `model.configure_optimizers()` work (devices and accumulation included)."""
    from lightning.pytorch.trainer import call
    from lightning.pytorch.trainer.states import TrainerFn

    trainer.state.fn = TrainerFn.FITTING
    trainer.training = True
    trainer.strategy.connect(model)
    # Private Lightning API: what trainer.fit does before its loop, without starting it.
    trainer._data_connector.attach_data(model, datamodule=datamodule)
    model.trainer = trainer
    call._call_setup_hook(trainer)
