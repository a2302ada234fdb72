"""Input-pipeline throughput alone (no model): a JPEG image folder against its `trainkit shard` shards, and on CUDA
CPU against GPU (nvJPEG) decoding of the same shards, at 224 px.

Both sides use the DataModules' defaults for this machine (workers, pinned memory, prefetch) and the same transform
(decode, resize to 224, normalise); the number is samples per second over one full training epoch, worker start-up
included, as a run would see it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainkit.commands.shard import shard_datamodule
from trainkit.data import ImageFolderDataModule, StreamingDataModule
from trainkit.data._common import default_num_workers


def write_jpeg_folder(root: Path, count: int, size: int, classes: int = 4, seed: int = 0) -> Path:
    """`count` smooth random RGB JPEGs of `size` px in `classes` class folders (compress like photos, not noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
        image.save(folder / f"{index:06d}.jpg", quality=90)
    return root


def samples_per_second(loader: torch.utils.data.DataLoader, decode=None) -> float:  # noqa: ANN001
    """Samples per second over one pass of `loader`; `decode` finishes a batch (GPU decoding) when given."""
    start, seen = time.perf_counter(), 0
    for batch in loader:
        images = decode(batch)[0] if decode is not None else batch[0]
        seen += len(images)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def _row(name: str, reference: float, ours: float, target: str) -> dict[str, str]:
    return {"benchmark": name, "hand loop": f"{reference:.0f}/s", "trainkit": f"{ours:.0f}/s",
            "ratio": f"{ours / reference:.2f}", "target": target}


def run(smoke: bool = False) -> list[dict[str, str]]:
    """The benchmark rows: image folder vs shards, then CPU vs GPU JPEG decode (or why that row is empty)."""
    count, size = (64, 64) if smoke else (1500, 256)
    workers = default_num_workers()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_folder(Path(tmp) / "jpegs", count, size)
        folder = ImageFolderDataModule(str(root), image_size=224, batch_size=64, val_fraction=0.1,
                                       test_fraction=0.1, num_workers=workers)
        shard_datamodule(folder, Path(tmp) / "shards")
        folder.setup("fit")
        streamed = StreamingDataModule(str(Path(tmp) / "shards"), batch_size=64, num_workers=workers)
        streamed.setup("fit")
        folder_rate = samples_per_second(folder.train_dataloader())
        shard_rate = samples_per_second(streamed.train_dataloader())
        rows = [_row(f"input pipeline: image folder (left) vs its shards, {workers} workers, JPEG -> 224 px",
                     folder_rate, shard_rate, ">= 0.9 (shards keep up)")]
        rows.append(_gpu_decode_row(Path(tmp) / "shards", workers))
    return rows


def _gpu_decode_row(shards: Path, workers: int) -> dict[str, str]:
    name = "input pipeline: CPU (left) vs GPU JPEG decode of the shards, 224 px"
    if not torch.cuda.is_available():
        return {"benchmark": name, "trainkit": "no CUDA device here; not measured"}
    rates = []
    for gpu in (False, True):
        data = StreamingDataModule(str(shards), batch_size=64, gpu_decode=gpu, num_workers=workers)
        data.setup("fit")

        def finish(batch, data=data, gpu=gpu):  # noqa: ANN001, ANN202
            if gpu:
                return data.on_before_batch_transfer(batch, 0)
            return batch[0].to("cuda", non_blocking=True), batch[1]

        rates.append(samples_per_second(data.train_dataloader(), finish))
    return _row(name, rates[0], rates[1], "> 1 where CPU decoding is the bottleneck")
