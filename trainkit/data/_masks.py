"""(image, mask) pairs for segmentation: one torchvision v2 transform moves both, so crops and flips stay aligned."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF


class PairedDataset(Dataset):
    """Base of segmentation datasets: subclasses `read` a [0, 1] float image (C, H, W) and a long mask (H, W).

    The image is wrapped as `tv_tensors.Image` and the mask as `tv_tensors.Mask`, so a v2 `transform` (flips, crops,
    affine, colour jitter, ...) moves both together, resamples the mask with nearest neighbour and leaves its values
    alone for photometric steps. Normalisation comes last and touches the image only.
    """

    def __init__(self, transform: nn.Module | None, mean: Sequence[float], std: Sequence[float]) -> None:
        self.transform, self.mean, self.std = transform, list(mean), list(std)

    def read(self, index: int) -> tuple[Tensor, Tensor]:
        """The raw (image, mask) pair number `index`."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.read(index)
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        image = TF.normalize(image.as_subclass(Tensor), self.mean, self.std)
        return image, mask.as_subclass(Tensor).long()


class TensorPairs(PairedDataset):
    """Images (N, C, H, W) in [0, 1] and masks (N, H, W) held in memory."""

    def __init__(
        self, images: Tensor, masks: Tensor, transform: nn.Module | None, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__(transform, mean, std)
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.masks)

    def read(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.masks[index]


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (N, C, H, W) images, for normalisation from the training split only."""
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).float()
    return flat.mean(dim=1).tolist(), flat.std(dim=1).clamp_min(1e-6).tolist()

