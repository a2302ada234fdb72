"""MetricLearningModule: mining on tiny data, a real fit through the CLI, and embeddings written by predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner

from tests.conftest import REPO, tiny_argv
from trainkit.errors import ConfigError
from trainkit.tasks import MetricLearningModule

CONFIG = REPO / "configs" / "metric_learning" / "digits.yaml"
TINY = tiny_argv(
    CONFIG, "--model.init_args.backbone", "test_resnet", "--data.init_args.data.init_args.image_size", "16",
    "--data.init_args.classes_per_batch", "5", "--data.init_args.samples_per_class", "4",
    limit_train_batches=3, limit_val_batches=2, limit_test_batches=2,
)

# Six 1-D embeddings (as points on a line, cosine-free distances via LpDistance): classes 0 and 1.
POINTS = torch.tensor([[0.0], [0.1], [1.0], [0.3], [0.45], [2.0]])
LABELS = torch.tensor([0, 0, 0, 1, 1, 1])


def test_batch_hard_miner_picks_farthest_positive_and_nearest_negative() -> None:
    from pytorch_metric_learning.distances import LpDistance

    anchors, positives, negatives = BatchHardMiner(distance=LpDistance(normalize_embeddings=False))(POINTS, LABELS)
    picked = {a: (p, n) for a, p, n in zip(anchors.tolist(), positives.tolist(), negatives.tolist(), strict=True)}
    # anchor 0 (at 0.0): farthest positive is 2 (1.0), nearest negative is 3 (0.3)
    assert picked[0] == (2, 3)
    # anchor 3 (at 0.3): farthest positive is 5 (2.0), nearest negative is 1 (0.1)
    assert picked[3] == (5, 1)


def test_semihard_triplets_lie_inside_the_margin() -> None:
    from pytorch_metric_learning.distances import LpDistance

    distance = LpDistance(normalize_embeddings=False)
    miner = TripletMarginMiner(margin=0.5, type_of_triplets="semihard", distance=distance)
    a, p, n = miner(POINTS, LABELS)
    assert len(a) > 0
    d = torch.cdist(POINTS, POINTS)
    d_ap, d_an = d[a, p], d[a, n]
    assert torch.all(d_an > d_ap) and torch.all(d_an <= d_ap + 0.5)
    # e.g. anchor 0, positive 1 (0.1), negative 3 (0.3) is semi-hard; anchor 0, positive 2, negative 3 is hard
    triplets = set(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    assert (0, 1, 3) in triplets and (0, 2, 3) not in triplets


def test_step_uses_the_miner_triplets() -> None:
    miner = TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    model = MetricLearningModule(backbone="test_resnet", embedding_dim=8, in_chans=1, miner=miner)
    x, y = torch.randn(12, 1, 16, 16), torch.arange(3).repeat(4)
    model.eval()
    loss, embeddings, target = model.step((x, y), "val")
    assert embeddings.shape == (12, 8) and torch.allclose(embeddings.norm(dim=1), torch.ones(12), atol=1e-5)
    assert torch.equal(target, y)
    expected = TripletMarginLoss(margin=0.2)(embeddings, y, miner(embeddings, y))
    assert loss.item() == pytest.approx(expected.item())


def test_backbone_module_without_feature_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_features"):
        MetricLearningModule(backbone=torch.nn.Flatten())


def test_fit_reports_retrieval_metrics_and_predict_writes_embeddings(workdir: Path, trainkit) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY, "--model.init_args.loss", "pytorch_metric_learning.losses.ContrastiveLoss",
                    "--model.init_args.miner", "pytorch_metric_learning.miners.BatchHardMiner",
                    "--test_after_fit", "true") == 0
    run = workdir / "runs" / "digits_metric" / "version_0"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("val/recall_at_1", "val/recall_at_5", "val/map_at_r", "test/recall_at_1", "train/loss_epoch"):
        assert name in header
    assert not any(h.startswith("train/recall") for h in header)
    assert trainkit("predict", *TINY, "--ckpt_path", "best") == 0
    found = list(run.glob("predict/version_*/embeddings.npz"))
    assert len(found) == 1
    arrays = np.load(found[0])
    assert arrays["embeddings"].shape == (len(arrays["labels"]), 64)
    assert np.allclose(np.linalg.norm(arrays["embeddings"], axis=1), 1.0, atol=1e-4)
    assert set(np.unique(arrays["labels"])) <= set(range(10))
