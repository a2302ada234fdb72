"""Callbacks. Those in CLI_CALLBACKS are always present and configurable as top-level groups (`--checkpoint.*`)."""

from lightning.pytorch import Callback

from trainkit.callbacks.early_stop import EarlyStop
from trainkit.callbacks.prediction_writer import PredictionWriter
from trainkit.callbacks.progress import ThrottledProgressBar
from trainkit.callbacks.run_checkpoint import RunCheckpoint
from trainkit.callbacks.speed import Speed

CLI_CALLBACKS: dict[str, type[Callback]] = {
    "checkpoint": RunCheckpoint,
    "early_stopping": EarlyStop,
    "predictions": PredictionWriter,
    "speed": Speed,
}
"""Group name -> callback class. Arguments named `monitor`/`mode` follow the top-level --monitor/--mode."""

__all__ = ["CLI_CALLBACKS", "EarlyStop", "PredictionWriter", "RunCheckpoint", "Speed", "ThrottledProgressBar"]
