"""Callbacks. Those in CLI_CALLBACKS are always present and configurable as top-level groups (`--checkpoint.*`)."""

from collections.abc import Iterable

from lightning.pytorch import Callback

from trainkit.callbacks.backbone_freeze import BackboneFreeze
from trainkit.callbacks.batch_size import BatchSize
from trainkit.callbacks.data_summary import DataSummary
from trainkit.callbacks.doctor import Doctor
from trainkit.callbacks.early_stop import EarlyStop
from trainkit.callbacks.elastic_net import ElasticNet
from trainkit.callbacks.ema import EMA
from trainkit.callbacks.layer_health import LayerHealth
from trainkit.callbacks.lora import LoRA
from trainkit.callbacks.nonfinite_guard import NonFiniteGuard
from trainkit.callbacks.prediction_writer import PredictionWriter
from trainkit.callbacks.progress import ThrottledProgressBar
from trainkit.callbacks.run_checkpoint import RunCheckpoint
from trainkit.callbacks.speed import Speed
from trainkit.callbacks.spike_guard import SpikeGuard
from trainkit.callbacks.swa import SWA
from trainkit.callbacks.throughput import Throughput
from trainkit.callbacks.training_monitor import TrainingMonitor
from trainkit.callbacks.weight_init import WeightInit
from trainkit.hpc import DistributedGuard, ExactResume, Preemption

CLI_CALLBACKS: dict[str, type[Callback]] = {
    "checkpoint": RunCheckpoint,
    "early_stopping": EarlyStop,
    "predictions": PredictionWriter,
    "data_summary": DataSummary,
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
    "train_stats": TrainingMonitor,
    "layer_health": LayerHealth,
    "nan_guard": NonFiniteGuard,
    "spike_guard": SpikeGuard,
    "throughput": Throughput,
    "batch_size": BatchSize,
}
"""Group name -> callback class. Arguments named `monitor`/`mode` follow the top-level --monitor/--mode. Each says
`enabled`; the CLI attaches only the enabled ones, so their hooks never check again."""


def attached(callbacks: Iterable[Callback]) -> list[Callback]:
    """The callbacks a Trainer gets: those whose `enabled` is False are left out."""
    # Lightning calls every callback's hooks at every step, and each no-op call costs a few microseconds of Python.
    return [c for c in callbacks if getattr(c, "enabled", True) is not False]

__all__ = [
    "CLI_CALLBACKS", "EMA", "SWA", "BackboneFreeze", "BatchSize", "DataSummary", "Doctor", "EarlyStop", "ElasticNet",
    "LayerHealth", "LoRA",
    "NonFiniteGuard", "PredictionWriter", "attached", "RunCheckpoint", "Speed", "ThrottledProgressBar", "Throughput",
    "TrainingMonitor", "WeightInit", "SpikeGuard",
]
