"""Callbacks. Those in CLI_CALLBACKS are always present and configurable as top-level groups (`--checkpoint.*`)."""

from lightning.pytorch import Callback

from trainkit.callbacks.backbone_freeze import BackboneFreeze
from trainkit.callbacks.early_stop import EarlyStop
from trainkit.callbacks.prediction_writer import PredictionWriter
from trainkit.callbacks.run_checkpoint import RunCheckpoint
from trainkit.callbacks.weight_init import WeightInit

CLI_CALLBACKS: dict[str, type[Callback]] = {
    "checkpoint": RunCheckpoint,
    "early_stopping": EarlyStop,
    "predictions": PredictionWriter,
    "freeze": BackboneFreeze,
    "weight_init": WeightInit,
}
"""Group name -> callback class. Arguments named `monitor`/`mode` follow the top-level --monitor/--mode."""

__all__ = ["CLI_CALLBACKS", "BackboneFreeze", "EarlyStop", "PredictionWriter", "RunCheckpoint", "WeightInit"]
