"""StreamingDataModule: train from the tar shards `trainkit shard` writes, with a seeded shuffle, a rank x worker
split that neither drops nor doubles a sample, the map-style modules' transforms, and exact mid-epoch resume.

The loader's position is (epoch, batches done); trainkit's ExactResume callback saves it in every checkpoint and hands
it back to the stream on resume, which then starts reading at that batch (see trainkit/data/shard_stream.py).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.utils.data import DataLoader, default_collate

from trainkit.data._common import image_transform, loader_options
from trainkit.data.shard_stream import EpochSignal, ShardStream
from trainkit.data.shards import IMAGE_EXTENSIONS, JPEG_EXTENSIONS, read_manifest, verify_checksums
from trainkit.errors import ConfigError

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
DATA_ATTRIBUTES = ("num_classes", "in_chans", "class_names", "in_features", "num_outputs", "target_names",
                   "feature_names")
"""Attributes the manifest carries over from the sharded DataModule (the model checks them against its own)."""


def decode_image(data: Tensor, extension: str, channels: int) -> Tensor:
    """An encoded image (uint8 byte tensor) as a uint8 (C, H, W) tensor with `channels` channels."""
    if extension in ("jpg", "png", "webp", "gif"):
        from torchvision.io import ImageReadMode
        from torchvision.io import decode_image as decode

        return decode(data, mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    import io

    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
        return TF.pil_to_tensor(image.convert("L" if channels == 1 else "RGB"))


class SampleTransform:
    """Decode and transform one streamed sample as its map-style DataModule would (picklable, for the workers).

    Image files go through `image_transform` (resize, augmentation on [0, 1], normalisation); stored tensors are
    used as stored, with `augment` applied to the image (to image and mask together for segmentation pairs).
    Augmentation draws from a generator seeded by (seed, epoch, sample), so it does not depend on which worker or
    process reads the sample: a resumed run augments exactly as an uninterrupted one.
    """

    def __init__(self, layout: dict[str, Any], channels: int, pipeline: Callable | None, augment: nn.Module | None,
                 keep_encoded: bool = False) -> None:
        self.fields = [ext for _, ext in layout["fields"]]
        self.paired, self.channels = layout.get("paired", False), channels
        self.pipeline, self.augment, self.keep_encoded = pipeline, augment, keep_encoded

    def __call__(self, sample: Any, key: tuple[int, int, int]) -> Any:
        seeded = self.augment is not None
        if seeded:
            state = torch.get_rng_state()
            torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        try:
            return self._apply(sample)
        finally:
            if seeded:
                torch.set_rng_state(state)  # the caller's stream (the training process's, with no workers) is untouched

    def _apply(self, sample: Any) -> Any:
        if isinstance(sample, tuple) and any(ext in IMAGE_EXTENSIONS for ext in self.fields):
            return tuple(self._image(value, ext) if ext in IMAGE_EXTENSIONS else value
                         for value, ext in zip(sample, self.fields, strict=True))
        if self.augment is None:
            return sample
        if self.paired:
            from torchvision import tv_tensors

            image, mask = self.augment(tv_tensors.Image(sample[0]), tv_tensors.Mask(sample[1]))
            return image.as_subclass(Tensor), mask.as_subclass(Tensor)
        if isinstance(sample, tuple):
            return (self.augment(sample[0]), *sample[1:])
        return self.augment(sample)

    def _image(self, data: Tensor, extension: str) -> Tensor:
        if self.keep_encoded:
            return data
        image = decode_image(data, extension, self.channels)
        return self.pipeline(image) if self.pipeline is not None else image


def collate_encoded(samples: list[tuple[Any, ...]]) -> tuple[list[Tensor], Any]:
    """(list of encoded images, collated rest): byte strings of different lengths do not stack."""
    return [sample[0] for sample in samples], default_collate([sample[1:] for sample in samples])


class StreamingDataModule(LightningDataModule):
    """Samples from a shard folder written by `trainkit shard`: seeded shuffle, exact resume, any DataModule's data."""

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        shuffle_buffer: int = 1000,
        seed: int | None = None,
        image_size: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        train_transform: nn.Module | None = None,
        gpu_decode: bool = False,
        verify_checksums: bool = True,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        prefetch_factor: int | None = None,
    ) -> None:
        """Args:
        root: the shard folder (holds manifest.json).
        batch_size: samples per batch.
        shuffle_buffer: samples held by the shuffle buffer after the shard order is shuffled (training split only);
            larger mixes better and costs nothing but a few integers, as the order is planned on indices.
        seed: seed of the shuffle and the augmentation; None takes the run's seed_everything.
        image_size: square side images are resized to; None keeps the sharded DataModule's.
        mean: per-channel normalisation mean for image files; None keeps the sharded DataModule's.
        std: per-channel normalisation std for image files; None keeps the sharded DataModule's.
        train_transform: augmentation of training samples, as in the map-style DataModules.
        gpu_decode: decode JPEG shards on the GPU (torchvision's nvJPEG decoder) after the batch reaches it; falls
            back to CPU decoding, with a warning, without CUDA or JPEG data.
        verify_checksums: check every shard's SHA-256 against the manifest before reading.
        num_workers: loader workers; None picks from the CPUs this process may use.
        pin_memory: page-locked batches; None pins when there is a GPU.
        persistent_workers: keep workers between epochs; None keeps them whenever there are workers.
        prefetch_factor: batches each worker prepares ahead; None picks 4 on a GPU, 2 on CPU.
        """
        super().__init__()
        self.save_hyperparameters(ignore=["train_transform"], logger=False)
        self.root, self.batch_size, self.shuffle_buffer, self.seed = root, batch_size, shuffle_buffer, seed
        self.image_size, self.mean, self.std, self.train_transform = image_size, mean, std, train_transform
        self.gpu_decode, self.verify = gpu_decode, verify_checksums
        self.options = {"num_workers": num_workers, "pin_memory": pin_memory,
                        "persistent_workers": persistent_workers, "prefetch_factor": prefetch_factor}
        self.manifest: dict[str, Any] = {}
        self.streams: dict[str, ShardStream] = {}
        self._gpu_pipelines: dict[str, Callable] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.manifest:
            self.manifest = read_manifest(self.root)
            for name in DATA_ATTRIBUTES:
                if name in self.manifest.get("attributes", {}):
                    setattr(self, name, self.manifest["attributes"][name])
            if self.seed is None:
                self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        held = self.manifest["splits"]
        for name in STAGE_SPLITS.get(stage or "", tuple(held)):
            if name in self.streams:
                continue
            if name not in held:
                raise ConfigError(f"the shards in '{self.root}' hold no {name} split (they hold {', '.join(held)}); "
                                  f"write it with `trainkit shard --config X.yaml --out {self.root} --split {name}`")
            if self.verify:
                verify_checksums(self.root, held[name]["shards"])
            self.streams[name] = self._stream(name)
            self._distribute(self.streams[name])

    def _distribute(self, stream: ShardStream) -> None:
        if self.trainer is not None:
            stream.distribute(self.trainer.global_rank, self.trainer.world_size)

    def _stream(self, name: str) -> ShardStream:
        split, image = self.manifest["splits"][name], self.manifest.get("image", {})
        augment = self.train_transform if name == "train" else None
        extensions = {ext for _, ext in split["layout"]["fields"]}
        pipeline = None
        if extensions & set(IMAGE_EXTENSIONS):
            mean, std = self.mean or image.get("mean"), self.std or image.get("std")
            if mean is None or std is None:
                raise ConfigError(f"the shards in '{self.root}' do not record how to normalise their images; set "
                                  "--data.init_args.mean and --data.init_args.std")
            pipeline = image_transform(self.image_size or image.get("image_size"), mean, std, augment)
        on_gpu = self.gpu_decode and self._gpu_decodes(extensions)
        transform = SampleTransform(split["layout"], getattr(self, "in_chans", 3) or 3, pipeline, augment,
                                    keep_encoded=on_gpu)
        if on_gpu:
            self._gpu_pipelines[name] = pipeline
        return ShardStream(self.root, split, self.batch_size, shuffle=name == "train", buffer=self.shuffle_buffer,
                           seed=int(self.seed or 0), transform=transform,
                           collate=collate_encoded if on_gpu else default_collate)

    def _gpu_decodes(self, extensions: set[str]) -> bool:
        """Whether batches can be decoded on the GPU; warns once why not when they cannot."""
        if not torch.cuda.is_available():
            rank_zero_warn("trainkit: gpu_decode needs CUDA; decoding the images on the CPU")
            return False
        if not extensions & set(JPEG_EXTENSIONS) or len(extensions & set(IMAGE_EXTENSIONS)) != 1:
            rank_zero_warn("trainkit: gpu_decode decodes JPEG only; these shards hold "
                           f"{', '.join(sorted(extensions & set(IMAGE_EXTENSIONS)))}; decoding on the CPU")
            return False
        return True

    def _loader(self, name: str) -> DataLoader:
        if name not in self.streams:
            self.setup({"train": "fit", "val": "validate"}.get(name, "test"))
        stream = self.streams[name]
        self._distribute(stream)
        # A private generator: creating the worker iterators then draws nothing from the global RNG stream, which a
        # resumed run reaches at different moments than an uninterrupted one.
        loader = DataLoader(stream, batch_size=None, generator=torch.Generator().manual_seed(int(self.seed or 0)),
                            **loader_options(**self.options))
        # An IterableDataset's loader takes no sampler; this one only carries Lightning's set_epoch to the stream.
        object.__setattr__(loader, "sampler", EpochSignal(stream))
        # Lightning warns that workers of a sized IterableDataset may duplicate data; ours split it by batch.
        warnings.filterwarnings("ignore", message=".*IterableDataset.* has .__len__. defined.*")
        return loader

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self._gpu_pipelines or not isinstance(batch, tuple | list) or not isinstance(batch[0], list):
            return batch
        from torchvision.io import ImageReadMode, decode_jpeg

        trainer = self.trainer
        stage = "test"
        if trainer is not None:
            stage = "train" if trainer.training else "val" if trainer.validating or trainer.sanity_checking else "test"
        pipeline = self._gpu_pipelines.get(stage) or next(iter(self._gpu_pipelines.values()))
        device = trainer.strategy.root_device if trainer is not None else torch.device("cuda")
        mode = ImageReadMode.GRAY if getattr(self, "in_chans", 3) == 1 else ImageReadMode.RGB
        images = decode_jpeg(batch[0], mode=mode, device=device)
        return (torch.stack([pipeline(image) for image in images]), *batch[1])

    def state_dict(self) -> dict[str, Any]:
        """What the stream order depends on besides the position, to warn when a resume cannot be exact."""
        stream = self.streams.get("train")
        if stream is None:
            return {}
        return {"seed": stream.seed, "world_size": stream.world, "batch_size": stream.batch_size,
                "shuffle_buffer": stream.buffer, "samples": stream.total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        now = self.state_dict()
        changed = [f"{key} {state_dict[key]} -> {now[key]}" for key in now
                   if key in state_dict and state_dict[key] != now[key]]
        if changed:
            rank_zero_warn(f"trainkit: the stream differs from the checkpoint's ({'; '.join(changed)}), so the "
                           "resumed epoch does not continue the saved order exactly")
