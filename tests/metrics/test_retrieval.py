"""RetrievalMetric against values counted by hand on six points of a circle."""

from __future__ import annotations

import math

import pytest
import torch

from trainkit.metrics import RetrievalMetric

# Angles in degrees; cosine similarity orders neighbours by angular distance.
ANGLES = [0, 10, 90, 100, 180, 60]
LABELS = [0, 0, 1, 1, 2, 2]
# Nearest other point: 0->10 (hit), 10->0 (hit), 90->100 (hit), 100->90 (hit), 180->100 (miss), 60->90 (miss).
# Three nearest: 180 -> 100, 90, 60 (hit at 3rd); 60 -> 90, 100, 10 (miss).


def _points() -> tuple[torch.Tensor, torch.Tensor]:
    rad = torch.tensor([math.radians(a) for a in ANGLES])
    return torch.stack([rad.cos(), rad.sin()], dim=1), torch.tensor(LABELS)


@pytest.mark.parametrize(("kind", "k", "expected"), [
    ("recall_at_k", 1, 4 / 6),
    ("recall_at_k", 2, 4 / 6),
    ("recall_at_k", 3, 5 / 6),
    ("map_at_r", 1, 4 / 6),  # every class has 2 members, so R = 1 and mAP@R is precision@1
])
def test_values_match_hand_count(kind: str, k: int, expected: float) -> None:
    metric = RetrievalMetric(kind, k=k)
    embeddings, labels = _points()
    metric.update(embeddings[:3], labels[:3])  # two batches: the search runs over the whole epoch
    metric.update(embeddings[3:], labels[3:])
    assert metric.compute().item() == pytest.approx(expected)


def test_map_at_r_rewards_ranking_all_positives_first() -> None:
    # Class 0 = {0, 10, 40} deg (R = 2), class 1 = {25} (alone: no query), class 2 = {200, 215} (R = 1).
    # AP@R = mean over the first R neighbours of precision-at-i at each hit, divided by R:
    #   0 -> [10 hit, 25 miss] = 1/2;  10 -> [0 hit, 25 miss] = 1/2;  40 -> [25 miss, 10 hit] = (1/2)/2 = 1/4
    #   200 -> [215 hit] = 1;  215 -> [200 hit] = 1.   Mean over the five queries = 3.25 / 5.
    angles, labels = [0, 10, 40, 25, 200, 215], [0, 0, 0, 1, 2, 2]
    rad = torch.tensor([math.radians(a) for a in angles])
    metric = RetrievalMetric("map_at_r")
    metric.update(torch.stack([rad.cos(), rad.sin()], dim=1), torch.tensor(labels))
    assert metric.compute().item() == pytest.approx(3.25 / 5)
