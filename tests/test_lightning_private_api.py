"""The private Lightning names trainkit relies on still exist: a Lightning upgrade that moves one fails here, once,
naming the trainkit code to update (pyproject pins lightning>=2.6.4,<2.7)."""

from __future__ import annotations

import importlib

import pytest
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

# (module, name) -> the trainkit code that imports it
FUNCTIONS = {
    ("lightning.pytorch.utilities.data", "_update_dataloader"): "hpc/exact_resume.py (resumable train sampler)",
    ("lightning.fabric.utilities.seed", "_collect_rng_states"): "doctor/preflight.py (one-batch overfit)",
    ("lightning.fabric.utilities.seed", "_set_rng_states"): "doctor/preflight.py (one-batch overfit)",
    ("lightning.pytorch.trainer.call", "_call_setup_hook"): "commands/_quiet_cli.py (attach_for_fit)",
}
# (class, attribute) -> the trainkit code that overrides or reads it
METHODS = {
    (LightningCLI, "_instantiate_trainer"): "cli.py (preflight before the Trainer, disabled callbacks left out)",
    (LightningCLI, "_run_subcommand"): "cli.py (DDP ranks started inside it get the run's folder)",
    (ModelCheckpoint, "_save_checkpoint"): "callbacks/run_checkpoint.py (atomic checkpoint writes)",
    (ModelCheckpoint, "_save_last_checkpoint"): "callbacks/run_checkpoint.py (last.ckpt at the end and on preemption)",
    (ModelCheckpoint, "_monitor_candidates"): "callbacks/run_checkpoint.py",
    (FSDPStrategy, "_setup_model"): "hpc/fsdp.py (auto-wrap policy from the model)",
    (LightningModule, "_apply_batch_transfer_handler"): "doctor/preflight.py (one-batch overfit)",
}


def _instance_attributes() -> dict[tuple[object, str], str]:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    return {
        (trainer, "_logger_connector"): "tasks/base.py (train/lr only on logging steps)",
        (trainer, "_data_connector"): "commands/_quiet_cli.py (attach_for_fit)",
        (trainer._data_connector, "attach_data"): "commands/_quiet_cli.py",
        (trainer.fit_loop, "_data_source"): "doctor/preflight.py (the first training batch)",
        (trainer.fit_loop, "_combined_loader"): "callbacks/batch_size.py (rebuilt at the halved batch size)",
        (DDPStrategy(), "_timeout"): "hpc/distributed_guard.py (the collective timeout)",
        (ModelCheckpoint(), "_last_global_step_saved"): "callbacks/run_checkpoint.py",
        (ModelCheckpoint(), "_last_checkpoint_saved"): "callbacks/run_checkpoint.py",
        (WeightAveraging(), "_average_model"): "callbacks/weight_average.py",
        (FSDPStrategy(), "_activation_checkpointing_kwargs"): "hpc/fsdp.py",
    }


@pytest.mark.parametrize(("where", "user"), FUNCTIONS.items(), ids=lambda x: x[1] if isinstance(x, tuple) else "")
def test_private_functions_exist(where: tuple[str, str], user: str) -> None:
    module, name = where
    assert hasattr(importlib.import_module(module), name), f"Lightning no longer has {module}.{name}; update {user}"


def test_private_methods_and_attributes_exist() -> None:
    missing = [f"{getattr(owner, '__name__', type(owner).__name__)}.{name} (update {user})"
               for (owner, name), user in {**METHODS, **_instance_attributes()}.items() if not hasattr(owner, name)]
    assert not missing, "Lightning no longer has: " + "; ".join(missing)
    assert hasattr(Trainer(logger=False, accelerator="cpu")._logger_connector, "should_update_logs"), (
        "Lightning's _LoggerConnector.should_update_logs is gone; update tasks/base.py on_train_batch_start")
