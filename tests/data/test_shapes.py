"""Generated shapes: deterministic by seed, the right classes, augmentation moving image and mask together."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from trainkit.data import ShapesDataModule
from trainkit.data.shapes import render_shapes


def test_same_seed_same_data_other_seed_other_data() -> None:
    images, masks = render_shapes(6, image_size=32, seed=3)
    again, again_masks = render_shapes(6, image_size=32, seed=3)
    other, _ = render_shapes(6, image_size=32, seed=4)
    assert torch.equal(images, again) and torch.equal(masks, again_masks)
    assert not torch.equal(images, other)
    assert images.shape == (6, 3, 32, 32) and 0 <= images.min() and images.max() <= 1


def test_every_class_appears_and_background_dominates() -> None:
    _, masks = render_shapes(200, image_size=48, seed=0)
    share = torch.bincount(masks.flatten(), minlength=4).float() / masks.numel()
    assert share.shape == (4,) and (share[1:] > 0.015).all() and share[0] > 0.6
    assert ((masks > 0).flatten(1).sum(dim=1) > 0).all()  # at least one shape in every image


def test_shapes_neither_touch_nor_leave_the_image() -> None:
    """Whole, separate shapes: an occluded or cut-off shape would carry an ambiguous label."""
    _, masks = render_shapes(200, image_size=48, seed=1)
    border = torch.cat([masks[:, 0], masks[:, -1], masks[:, :, 0], masks[:, :, -1]], dim=1)
    assert (border == 0).all()
    for a, b in ((masks[:, 1:], masks[:, :-1]), (masks[:, :, 1:], masks[:, :, :-1])):
        assert not ((a > 0) & (b > 0) & (a != b)).any()  # no two shapes of different kinds side by side


def test_splits_and_binary() -> None:
    data = ShapesDataModule(num_train=8, num_val=4, num_test=4, image_size=32, binary=True)
    data.setup()
    assert data.num_classes == 2 and [len(data.splits[s]) for s in ("train", "val", "test")] == [8, 4, 4]
    image, mask = data.splits["val"][0]
    assert image.shape == (3, 32, 32) and mask.dtype == torch.long and set(mask.unique().tolist()) <= {0, 1}
    # Normalised with the training split's statistics: the training images have mean about 0 per channel.
    train_images = torch.stack([data.splits["train"][i][0] for i in range(8)])
    assert train_images.mean(dim=(0, 2, 3)).abs().max() < 1e-4


def test_joint_transform_keeps_image_and_mask_aligned() -> None:
    flip = ShapesDataModule(num_train=4, num_val=1, num_test=1, image_size=32,
                            train_transform=v2.RandomHorizontalFlip(p=1.0))
    plain = ShapesDataModule(num_train=4, num_val=1, num_test=1, image_size=32)
    flip.setup()
    plain.setup()
    for i in range(4):
        image, mask = flip.splits["train"][i]
        plain_image, plain_mask = plain.splits["train"][i]
        assert torch.equal(mask, plain_mask.flip(-1)) and not torch.equal(mask, plain_mask)
        assert torch.allclose(image, plain_image.flip(-1))
    rotate = ShapesDataModule(num_train=4, num_val=1, num_test=1, image_size=32,
                              train_transform=v2.RandomAffine(degrees=30, scale=(0.8, 1.2)))
    rotate.setup()
    _, mask = rotate.splits["train"][0]
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}  # masks resampled by nearest neighbour: no blended labels
