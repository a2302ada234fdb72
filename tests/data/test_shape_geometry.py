"""Shape geometry: deterministic by seed, targets that agree with the masks, least-squares arrays of the right shape."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from trainkit.data import ShapeGeometryDataModule
from trainkit.data.shape_geometry import mask_geometry
from trainkit.data.shapes import render_shapes


def _small(**kwargs: int) -> ShapeGeometryDataModule:
    sizes = {"num_train": 12, "num_val": 5, "num_test": 6, "image_size": 24} | kwargs
    data = ShapeGeometryDataModule(**sizes)
    data.setup()
    return data


def _geometry_by_pixel_list(mask: Tensor) -> list[float]:
    """Area fraction and centroid from the list of foreground pixel coordinates, one mask at a time."""
    rows, cols = torch.nonzero(mask > 0, as_tuple=True)
    side = mask.shape[-1]
    return [len(rows) / side**2, (cols.double().mean().item() + 0.5) / side, (rows.double().mean().item() + 0.5) / side]


def test_same_seed_same_data_and_splits_are_separate_streams() -> None:
    data, again, other = _small(), _small(), _small(seed=1)
    more_train = _small(num_train=20)
    for split in ("train", "val", "test"):
        assert torch.equal(data.splits[split].labels, again.splits[split].labels)
        assert torch.equal(data.splits[split].images, again.splits[split].images)
        assert not torch.equal(data.splits[split].labels, other.splits[split].labels)
    assert not torch.equal(data.splits["val"].labels, data.splits["test"].labels[:5])
    # Changing num_train leaves val/test targets unchanged (images move a little: normalised with train statistics).
    for split in ("val", "test"):
        assert torch.equal(data.splits[split].labels, more_train.splits[split].labels)


@pytest.mark.parametrize("max_shapes", [1, 2])
def test_targets_agree_with_the_masks(max_shapes: int) -> None:
    data = _small(max_shapes=max_shapes, seed=2)
    for offset, split in enumerate(("train", "val", "test")):
        _, masks = render_shapes(data.sizes[split], 24, seed=2 * 3 + offset, max_shapes=max_shapes)
        expected = torch.tensor([_geometry_by_pixel_list(mask) for mask in masks], dtype=torch.float32)
        assert torch.allclose(data.splits[split].labels, expected, atol=1e-6)


def test_geometry_of_a_drawn_rectangle() -> None:
    mask = torch.zeros(1, 10, 10, dtype=torch.long)
    mask[0, 2:4, 5:9] = 2  # rows 2-3, columns 5-8: 8 pixels, centre at column 7.0, row 3.0 (pixel centres)
    assert mask_geometry(mask)[0].tolist() == pytest.approx([0.08, 0.7, 0.3])


def test_shapes_dtypes_and_attributes() -> None:
    data = _small()
    assert (data.in_chans, data.num_outputs) == (3, 3)
    assert data.target_names == ["area", "centroid_x", "centroid_y"]
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [12, 5, 6]
    image, target = data.splits["val"][0]
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32
    assert target.shape == (3,) and target.dtype == torch.float32
    targets = torch.cat([data.splits[s].labels for s in ("train", "val", "test")])
    assert (targets > 0).all() and (targets < 1).all()
    assert torch.equal(data.train_targets(), data.splits["train"].labels)
    # Normalised with the training split's statistics: the training images have mean about 0 per channel.
    assert data.splits["train"].images.mean(dim=(0, 2, 3)).abs().max() < 1e-4


def test_split_arrays_are_flattened_pixels() -> None:
    data = _small()
    features, targets = data.split_arrays("test")
    assert features.shape == (6, 3 * 24 * 24) and targets.shape == (6, 3)
    assert torch.equal(features[2].reshape(3, 24, 24), data.splits["test"][2][0])
    assert torch.equal(targets, data.splits["test"].labels)
