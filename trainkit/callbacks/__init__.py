"""Callbacks. Those in CLI_CALLBACKS are always present and configurable as top-level groups (`--checkpoint.*`)."""

from lightning.pytorch import Callback

from trainkit.callbacks.early_stop import EarlyStop
from trainkit.callbacks.elastic_net import ElasticNet
from trainkit.callbacks.ema import EMA
from trainkit.callbacks.lora import LoRA
from trainkit.callbacks.prediction_writer import PredictionWriter
from trainkit.callbacks.run_checkpoint import RunCheckpoint
from trainkit.callbacks.swa import SWA
from trainkit.hpc import ExactResume, Preemption

CLI_CALLBACKS: dict[str, type[Callback]] = {
    "checkpoint": RunCheckpoint,
    "early_stopping": EarlyStop,
    "predictions": PredictionWriter,
    "ema": EMA,
    "swa": SWA,
    "elastic_net": ElasticNet,
    "lora": LoRA,
    "resume": ExactResume,
    "preemption": Preemption,
}
"""Group name -> callback class. Arguments named `monitor`/`mode` follow the top-level --monitor/--mode."""

__all__ = ["CLI_CALLBACKS", "EMA", "SWA", "EarlyStop", "ElasticNet", "LoRA", "PredictionWriter", "RunCheckpoint"]
