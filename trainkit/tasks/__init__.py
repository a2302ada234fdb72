"""One LightningModule per task family, all on the shared TaskModule base."""

from trainkit.tasks.base import TaskModule
from trainkit.tasks.classification import ClassificationModule

__all__ = ["ClassificationModule", "TaskModule"]
