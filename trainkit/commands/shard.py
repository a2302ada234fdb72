"""`trainkit shard`: write a DataModule's splits as WebDataset-compatible tar shards with a manifest.

    trainkit shard --config configs/classification/digits.yaml --out shards/digits --split all

Image files (image-folder DataModules) are stored as their own bytes, so a JPEG stays a JPEG; every other sample is
stored as the DataModule yields it for evaluation (tensors, ints, strings, dicts), with training augmentation left
out: the StreamingDataModule applies its own `train_transform` when it reads. Every other flag is a `trainkit fit`
flag (--config X.yaml, --data.*).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset, Subset

from trainkit.commands._quiet_cli import quiet_cli
from trainkit.data.shards import (
    FORMAT,
    IMAGE_EXTENSIONS,
    MANIFEST,
    EncodedImage,
    encode_sample,
    read_manifest,
    sha256,
    write_manifest,
)
from trainkit.data.streaming import DATA_ATTRIBUTES
from trainkit.errors import ConfigError

SPLITS = ("train", "val", "test")
IMAGE_SETTINGS = ("image_size", "grayscale", "mean", "std")


def split_dataset(datamodule: LightningDataModule, split: str) -> Dataset:
    """The dataset behind the DataModule's `split` loader (any DataModule: its loader is the one interface)."""
    datamodule.setup("fit" if split in ("train", "val") else "test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        raise ConfigError(f"the {split} loader of {type(datamodule).__name__} has no sized dataset to shard")
    if len(dataset) == 0:
        raise ConfigError(f"the {split} split of {type(datamodule).__name__} is empty; give it samples (e.g. a "
                          f"non-zero --data.init_args.{split}_fraction) or shard another --split")
    return dataset


def _unwrap(dataset: Dataset) -> tuple[Dataset, list[int]]:
    """The dataset under any Subsets, and the indices into it of `dataset`'s samples."""
    indices = list(range(len(dataset)))  # type: ignore[arg-type]
    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


@contextlib.contextmanager
def _without_augmentation(datamodule: LightningDataModule, base: Dataset, split: str) -> Iterator[None]:
    """Serve the training split as evaluation sees it: trainkit datasets keep augmentation in `transform` (torchvision
    sets take the DataModule's `eval_tf` instead)."""
    if split != "train" or not hasattr(base, "transform"):
        yield
        return
    kept = base.transform
    base.transform = getattr(datamodule, "eval_tf", None)
    try:
        yield
    finally:
        base.transform = kept


def samples(datamodule: LightningDataModule, dataset: Dataset, split: str) -> Iterator[Any]:
    """The samples to store: image files' own bytes with their class, or what the dataset yields un-augmented."""
    from torchvision.datasets import DatasetFolder

    base, indices = _unwrap(dataset)
    if isinstance(base, DatasetFolder):
        for index in indices:
            path, target = base.samples[index]
            yield EncodedImage(Path(path).read_bytes(), Path(path).suffix.lstrip(".")), int(target)
        return
    with _without_augmentation(datamodule, base, split):
        for index in range(len(dataset)):  # type: ignore[arg-type]
            yield dataset[index]


def write_split(datamodule: LightningDataModule, split: str, out: Path, shard_bytes: int) -> dict[str, Any]:
    """Write one split's shards into `out`; return its manifest entry. Old shards of the split are replaced only
    once the new ones are complete."""
    from webdataset import ShardWriter

    dataset = split_dataset(datamodule, split)
    staging = out / f".{split}-writing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written: list[tuple[str, int]] = []
    layout = None
    writer = ShardWriter(str(staging / f"{split}-%06d.tar"), maxsize=shard_bytes, maxcount=1 << 40, verbose=0,
                         encoder=False, mtime=0, post=lambda name: written.append((name, writer.count)))
    with writer:
        for index, sample in enumerate(samples(datamodule, dataset, split)):
            members, sample_layout = encode_sample(sample)
            if layout is None:
                layout = sample_layout
            elif sample_layout["fields"] != layout["fields"]:
                raise ConfigError(f"{split} sample {index} has fields {sample_layout['fields']} but sample 0 has "
                                  f"{layout['fields']}; every sample of a split must have the same fields")
            writer.write({"__key__": f"{index:08d}", **members})
    for old in out.glob(f"{split}-*.tar"):
        old.unlink()
    shards = []
    for name, count in written:
        path = out / Path(name).name
        Path(name).replace(path)
        shards.append({"name": path.name, "samples": count, "bytes": path.stat().st_size, "sha256": sha256(path)})
    staging.rmdir()
    return {"samples": sum(s["samples"] for s in shards), "layout": layout, "shards": shards}


def data_attributes(datamodule: LightningDataModule) -> dict[str, Any]:
    """The DataModule's attributes a model is checked against (num_classes, in_chans, class names, ...)."""
    found: dict[str, Any] = {}
    for name in (*DATA_ATTRIBUTES, "classes"):
        value = getattr(datamodule, name, None)
        if isinstance(value, int | str | list | tuple) and not isinstance(value, bool):
            found["class_names" if name == "classes" else name] = list(value) if isinstance(value, tuple) else value
    return found


def image_settings(datamodule: LightningDataModule) -> dict[str, Any]:
    """Size and normalisation of an image-folder DataModule, for reading its stored files the same way."""
    hparams = dict(getattr(datamodule, "hparams", {}) or {})
    settings = {name: hparams[name] for name in IMAGE_SETTINGS if name in hparams}
    if settings.get("grayscale") and len(settings.get("mean", ())) == 3:  # as ImageFolderDataModule averages them
        settings["mean"], settings["std"] = [sum(settings["mean"]) / 3], [sum(settings["std"]) / 3]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def shard(argv: list[str], out: Path, split: str = "all", shard_size_mb: float = 256) -> dict[str, Any]:
    """Build the DataModule from `trainkit fit` flags, write the chosen splits into `out`, return the manifest."""
    if shard_size_mb <= 0:
        raise ConfigError(f"--shard_size_mb {shard_size_mb:g} must be positive")
    return shard_datamodule(quiet_cli(argv).datamodule, out, split, int(shard_size_mb * 2**20))


def shard_datamodule(datamodule: LightningDataModule, out: Path, split: str = "all",
                     shard_bytes: int = 256 << 20) -> dict[str, Any]:
    """Write `split` (or all three) of `datamodule` into `out` and update its manifest; return the manifest."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a new or empty folder for the shards")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ConfigError(f"--out {out} already holds files and is not a shard folder (no {MANIFEST}); pass a new "
                          "or empty folder, or a shard folder to update")
    manifest = read_manifest(out) if out.is_dir() and any(out.iterdir()) else {"format": FORMAT, "splits": {}}
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS if split == "all" else (split,):
        manifest["splits"][name] = write_split(datamodule, name, out, shard_bytes)
        manifest["source"] = f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
        manifest["attributes"] = data_attributes(datamodule)
        if any(ext in IMAGE_EXTENSIONS for entry in manifest["splits"].values()
               for _, ext in entry["layout"]["fields"]):
            manifest["image"] = image_settings(datamodule)
        write_manifest(out, manifest)  # after every split: finished splits survive a failure in the next one
    return manifest


def main(argv: list[str]) -> None:
    """Run `trainkit shard`."""
    parser = argparse.ArgumentParser(prog="trainkit shard", description=__doc__.splitlines()[0] + " Every other "
                                     "flag is a `trainkit fit` flag (--config X.yaml, --data.*).")
    parser.add_argument("--out", type=Path, required=True, help="shard folder to write (manifest.json goes there)")
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all", help="split to write (default all)")
    parser.add_argument("--shard_size_mb", type=float, default=256, help="start a new shard past this size (256)")
    args, rest = parser.parse_known_args(argv)
    manifest = shard(rest, args.out, args.split, args.shard_size_mb)
    for name in SPLITS if args.split == "all" else (args.split,):
        entry = manifest["splits"][name]
        size = sum(s["bytes"] for s in entry["shards"]) / 2**20
        print(f"trainkit: wrote {entry['samples']} {name} samples in {len(entry['shards'])} shards "
              f"({size:.1f} MiB) to {args.out}")
