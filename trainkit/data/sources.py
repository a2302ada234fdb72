"""New, unlabelled inputs for `trainkit predict --source PATH`: a folder or glob of images, and the one-line handling
of a file that cannot be read (skipped with its name printed, or the run stopped)."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from trainkit.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def source_paths(source: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of `source`: a folder (searched recursively) or a glob pattern, sorted; only `suffixes`."""
    folder = Path(source)
    if folder.is_dir():
        found = [p for p in folder.rglob("*") if p.is_file()]
    elif folder.is_file():
        found = [folder]
    else:
        found = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    paths = sorted(p for p in found if p.suffix.lower() in suffixes)
    if not paths:
        raise ConfigError(f"--source {source} holds no {'/'.join(s.lstrip('.') for s in suffixes[:4])} files; pass a "
                          "folder of them or a glob such as 'photos/*.jpg'")
    return paths


def unreadable(what: str, reason: str, skip: bool) -> None:
    """Name an input that cannot be used in one line: printed and skipped, or a ConfigError that stops the run."""
    if not skip:
        raise ConfigError(f"cannot read {what} ({reason}); fix or remove it, or pass "
                          "--predictions.skip_unreadable true to skip such inputs")
    print(f"trainkit: skipped {what}: {reason}", flush=True)


class ImageFiles(Dataset):
    """Images read from files (converted to RGB, or L for grayscale) and transformed like the evaluation split."""

    def __init__(self, paths: list[Path], transform: Callable[[Any], Any], grayscale: bool = False) -> None:
        self.paths, self.transform, self.mode = paths, transform, "L" if grayscale else "RGB"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert(self.mode))


def image_files(source: str, transform: Callable[[Any], Any], grayscale: bool, skip: bool) -> ImageFiles:
    """The readable images of `source` (each opened and checked once); an unreadable one is named, then skipped or
    the run stops."""
    from PIL import Image, UnidentifiedImageError

    readable = []
    for path in source_paths(source, IMAGE_SUFFIXES):
        try:
            with Image.open(path) as image:
                image.verify()
            readable.append(path)
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            unreadable(f"image '{path}'", " ".join(str(error).split()) or type(error).__name__, skip)
    if not readable:
        raise ConfigError(f"no image of --source {source} could be read; check the files")
    return ImageFiles(readable, transform, grayscale)
