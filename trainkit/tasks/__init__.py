"""One LightningModule per task family, all on the shared TaskModule base."""

from trainkit.tasks.base import TaskModule
from trainkit.tasks.classification import ClassificationModule
from trainkit.tasks.distillation import DistillationModule
from trainkit.tasks.language import CausalLMModule, DPOModule
from trainkit.tasks.metric_learning import MetricLearningModule
from trainkit.tasks.regression import RegressionModule
from trainkit.tasks.reward import RewardModule
from trainkit.tasks.rl import RLModule
from trainkit.tasks.segmentation import SegmentationModule

__all__ = [
    "CausalLMModule", "DPOModule",
    "ClassificationModule", "DistillationModule", "MetricLearningModule", "RegressionModule", "RewardModule",
    "RLModule", "SegmentationModule", "TaskModule",
]
