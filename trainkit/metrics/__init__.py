"""torchmetrics Metrics that no library ships in the shape tasks need."""

from trainkit.metrics.retrieval import RetrievalMetric

__all__ = ["RetrievalMetric"]
