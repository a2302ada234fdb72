"""The shard format: WebDataset-compatible tar files, a manifest (sample counts, class names, sha256 per shard),
sample encoding, and random access to a sample by its index.

A split is `DIR/<split>-000000.tar`, `DIR/<split>-000001.tar`, ... Each sample is a group of tar members with one key
(`00000042.0.png`, `00000042.1.cls`): field 0, 1, ... of the sample tuple (or the dict's keys), with the WebDataset
extension conventions (`cls` an int, `txt` a string, `pth` a torch.save'd object, image files as their own bytes),
so `webdataset.WebDataset(url).decode()` reads them too. `DIR/manifest.json` says what every shard holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainkit.errors import ConfigError

MANIFEST = "manifest.json"
FORMAT = "trainkit-shards/1"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
JPEG_EXTENSIONS = ("jpg", "jpeg")


class EncodedImage(bytes):
    """An image file's bytes, stored as they are (decoded when read); `extension` is the file type (`png`, `jpg`)."""

    extension: str

    def __new__(cls, data: bytes, extension: str) -> EncodedImage:
        image = super().__new__(cls, data)
        image.extension = "jpg" if extension.lower() == "jpeg" else extension.lower()
        return image


def encode_value(value: Any) -> tuple[str, bytes]:
    """(extension, bytes) of one field: images keep their file bytes, ints are `cls`, strings `txt`, the rest `pth`."""
    if isinstance(value, EncodedImage):
        return value.extension, bytes(value)
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point() and not value.is_complex():
        value = int(value)  # a class label: `cls`, as WebDataset stores labels
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str):
            return "txt", value.encode()
        buffer = io.BytesIO()
        torch.save(_own_storage(value), buffer)
        return "pth", buffer.getvalue()
    return "cls", str(value).encode()


def _own_storage(value: Any) -> Any:
    """Tensors copied out of the storage they view: torch.save writes a view's whole storage (a row of a big
    tensor would carry the entire dataset)."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _own_storage(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_own_storage(v) for v in value)
    return value


def decode_value(extension: str, data: bytes) -> Any:
    """The inverse of `encode_value`; an image comes back as its undecoded bytes in a uint8 tensor."""
    if extension == "cls":
        return int(data)
    if extension == "txt":
        return data.decode()
    if extension == "pth":
        return torch.load(io.BytesIO(data), weights_only=True)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def encode_sample(sample: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Tar members (`<field>.<ext>` -> bytes) of a sample and its layout (how to rebuild it when read)."""
    if isinstance(sample, dict):
        kind, items = "dict", [(str(k), v) for k, v in sample.items()]
    elif isinstance(sample, list | tuple):
        kind, items = "tuple", [(str(i), v) for i, v in enumerate(sample)]
    else:
        kind, items = "single", [("0", sample)]
    members, fields = {}, []
    for name, value in items:
        extension, data = encode_value(value)
        members[f"{name}.{extension}"] = data
        fields.append([name, extension])
    return members, {"kind": kind, "fields": fields, "paired": _is_image_mask_pair(kind, items)}


def _is_image_mask_pair(kind: str, items: list[tuple[str, Any]]) -> bool:
    """A segmentation sample: a float image (C, H, W) and an integer mask (H, W) that augmentation moves together."""
    if kind != "tuple" or len(items) != 2 or not all(isinstance(v, Tensor) for _, v in items):
        return False
    image, mask = items[0][1], items[1][1]
    return image.is_floating_point() and image.ndim == 3 and not mask.is_floating_point() and mask.ndim == 2


def decode_sample(members: dict[str, bytes], layout: dict[str, Any]) -> Any:
    """The sample `encode_sample` stored, images left encoded (uint8 byte tensors)."""
    values = [decode_value(ext, members[f"{name}.{ext}"]) for name, ext in layout["fields"]]
    if layout["kind"] == "dict":
        return {name: value for (name, _), value in zip(layout["fields"], values, strict=True)}
    return tuple(values) if layout["kind"] == "tuple" else values[0]


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a shard folder; a one-line error when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        hint = "the folder does not exist" if not Path(folder).is_dir() else f"no {MANIFEST} in it"
        raise ConfigError(f"'{folder}' is not a shard folder ({hint}); write one with "
                          f"`trainkit shard --config X.yaml --out {folder}`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); remove the folder and write the shards again with "
                          f"`trainkit shard --config X.yaml --out {folder}`") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        manifest = manifest if isinstance(manifest, dict) else {}
        raise ConfigError(f"'{path}' is format {manifest.get('format')!r}, not {FORMAT!r}; write the shards again "
                          "with `trainkit shard`")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically: a reader sees the old one or the new one, never half of it."""
    temporary = folder / f".{MANIFEST}.{os.getpid()}"
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    temporary.replace(folder / MANIFEST)


def verify_checksums(folder: str | Path, shards: Iterable[dict[str, Any]]) -> None:
    """Check each shard's size and SHA-256 against the manifest; a one-line error names the first bad shard."""
    for shard in shards:
        path = Path(folder) / shard["name"]
        if not path.is_file():
            raise ConfigError(f"shard '{path}' listed in the manifest is missing; copy it again or re-run "
                              "`trainkit shard`")
        if path.stat().st_size != shard["bytes"] or sha256(path) != shard["sha256"]:
            raise ConfigError(f"checksum mismatch in shard '{path}' (its SHA-256 differs from {MANIFEST}); the file "
                              "is damaged or was changed: copy it again or re-run `trainkit shard`")


class ShardReader:
    """Random access to samples in tar shards: the member table of a shard is read once (tar headers only), then a
    sample is one seek and one read per field. Keeps a few shards open; one reader per process (not picklable state
    is opened lazily)."""

    def __init__(self, folder: str | Path, shard_names: list[str], open_files: int = 8) -> None:
        self.folder, self.shard_names, self.open_files = Path(folder), shard_names, open_files
        self._files: OrderedDict[int, tuple[Any, list[dict[str, tuple[int, int]]]]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": OrderedDict()}  # each DataLoader worker opens its own file handles

    def _shard(self, index: int) -> tuple[Any, list[dict[str, tuple[int, int]]]]:
        if index in self._files:
            self._files.move_to_end(index)
            return self._files[index]
        path = self.folder / self.shard_names[index]
        file = path.open("rb")
        samples: list[dict[str, tuple[int, int]]] = []
        last_key = None
        with tarfile.open(fileobj=file, mode="r:") as tar:
            for member in tar:
                key, _, field = member.name.partition(".")
                if key != last_key:
                    samples.append({})
                    last_key = key
                samples[-1][field] = (member.offset_data, member.size)
        self._files[index] = (file, samples)
        if len(self._files) > self.open_files:
            self._files.popitem(last=False)[1][0].close()
        return self._files[index]

    def read(self, shard: int, index: int) -> dict[str, bytes]:
        """The members (`<field>.<ext>` -> bytes) of sample `index` of shard `shard`."""
        file, samples = self._shard(shard)
        members = {}
        for field, (offset, size) in samples[index].items():
            file.seek(offset)
            members[field] = file.read(size)
        return members
