"""Callbacks. Those in CLI_CALLBACKS are always present and configurable as top-level groups (`--checkpoint.*`)."""

from lightning.pytorch import Callback

from trainkit.callbacks.backbone_freeze import BackboneFreeze
from trainkit.callbacks.doctor import Doctor
from trainkit.callbacks.early_stop import EarlyStop
from trainkit.callbacks.elastic_net import ElasticNet
from trainkit.callbacks.ema import EMA
from trainkit.callbacks.lora import LoRA
from trainkit.callbacks.nonfinite_guard import NonFiniteGuard
from trainkit.callbacks.prediction_writer import PredictionWriter
from trainkit.callbacks.progress import ThrottledProgressBar
from trainkit.callbacks.run_checkpoint import RunCheckpoint
from trainkit.callbacks.speed import Speed
from trainkit.callbacks.swa import SWA
from trainkit.callbacks.training_monitor import TrainingMonitor
from trainkit.callbacks.weight_init import WeightInit
from trainkit.hpc import DistributedGuard, ExactResume, Preemption

CLI_CALLBACKS: dict[str, type[Callback]] = {
    "checkpoint": RunCheckpoint,
    "early_stopping": EarlyStop,
    "predictions": PredictionWriter,
    "weight_init": WeightInit,
    "freeze": BackboneFreeze,
    "speed": Speed,
    "ema": EMA,
    "swa": SWA,
    "elastic_net": ElasticNet,
    "lora": LoRA,
    "resume": ExactResume,
    "preemption": Preemption,
    "distributed": DistributedGuard,
    "doctor": Doctor,
    "monitors": TrainingMonitor,
    "nan_guard": NonFiniteGuard,
}
"""Group name -> callback class. Arguments named `monitor`/`mode` follow the top-level --monitor/--mode."""

__all__ = [
    "CLI_CALLBACKS", "EMA", "SWA", "BackboneFreeze", "Doctor", "EarlyStop", "ElasticNet", "LoRA", "NonFiniteGuard",
    "PredictionWriter", "RunCheckpoint", "Speed", "ThrottledProgressBar", "TrainingMonitor", "WeightInit",
]
