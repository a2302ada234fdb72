"""One LightningModule per task family, all on the shared TaskModule base."""

from trainkit.tasks.base import TaskModule
from trainkit.tasks.classification import ClassificationModule
from trainkit.tasks.distillation import DistillationModule
from trainkit.tasks.metric_learning import MetricLearningModule

__all__ = ["ClassificationModule", "DistillationModule", "MetricLearningModule", "TaskModule"]
