"""ImageAugment: presets resolve as documented, images and masks move together, and masks survive auto-augment."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from trainkit.augment import ImageAugment
from trainkit.errors import ConfigError


def labelled_pair() -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An image whose single channel equals its mask's class ids (0-3 in quadrants), so alignment is checkable."""
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[:16, 16:], mask[16:, :16], mask[16:, 16:] = 1, 2, 3
    return tv_tensors.Image(mask[None].float() / 3), tv_tensors.Mask(mask)


def test_presets_fill_defaults_and_explicit_arguments_win() -> None:
    aug = ImageAugment(preset="standard", rotation=0.0, hflip=0.5)
    assert aug.settings == {"crop_scale": (0.5, 1.0), "rotation": 0.0, "color_jitter": 0.2, "hflip": 0.5}
    assert ImageAugment().settings == {}
    assert ImageAugment(preset="strong").settings["auto"] == "randaugment"


def test_geometry_moves_image_and_mask_together() -> None:
    aug = ImageAugment(hflip=1.0, vflip=1.0, rotation=30.0)  # rotation is nearest-neighbour for both
    image, mask = labelled_pair()
    for _ in range(5):
        out_image, out_mask = aug(image, mask)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
        torch.testing.assert_close((out_image[0] * 3).round().long(), out_mask)
        assert not torch.equal(out_mask, mask)


def test_random_resized_crop_keeps_size_and_alignment() -> None:
    aug = ImageAugment(crop_scale=(0.3, 0.6))
    image, mask = labelled_pair()
    out_image, out_mask = aug(image, mask)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3}
    # The image is interpolated bilinearly and the mask by nearest neighbour: they agree except along class borders.
    agree = ((out_image[0] * 3).round().long() == out_mask).float().mean()
    assert agree > 0.9
    assert not torch.equal(out_mask, mask)


@pytest.mark.parametrize("auto", ["randaugment", "trivialaugment"])
def test_auto_augment_changes_images_and_leaves_masks_alone(auto: str) -> None:
    aug = ImageAugment(auto=auto, auto_magnitude=20)
    image, mask = labelled_pair()
    outputs = [aug(tv_tensors.Image(torch.rand(3, 32, 32)), mask) for _ in range(20)]
    assert all(torch.equal(out_mask, mask) for _, out_mask in outputs)  # only photometric ops touched the image
    plain = torch.rand(3, 32, 32)
    assert any(not torch.equal(aug(plain), plain) for _ in range(10))


def test_strong_preset_on_a_batch_of_classification_images() -> None:
    aug = ImageAugment(preset="strong", hflip=0.5)
    image = torch.rand(3, 24, 24)
    out = aug(image)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="hflip=1.5 is not a probability"):
        ImageAugment(hflip=1.5)
    with pytest.raises(ConfigError, match="crop_scale"):
        ImageAugment(crop_scale=(0.9, 0.2))
