"""Image augmentation from YAML: a named preset plus per-transform overrides, built from torchvision.transforms.v2.

The result is an nn.Module for a DataModule's `train_transform`. It takes the [0, 1] float image tensor, or an
image with its masks (`tv_tensors.Image`, `tv_tensors.Mask`, ...) which move together through every geometric step.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import get_size

from trainkit.errors import ConfigError

AutoAugment = Literal["randaugment", "trivialaugment"]

# Each preset only sets defaults; any argument given explicitly wins. Flips are off in every preset on purpose:
# they are wrong for digits, text and many medical images, so a user turns them on knowingly.
PRESETS: dict[str, dict[str, Any]] = {
    "light": {"crop_scale": (0.8, 1.0), "rotation": 5.0},
    "standard": {"crop_scale": (0.5, 1.0), "rotation": 10.0, "color_jitter": 0.2},
    "strong": {"crop_scale": (0.25, 1.0), "auto": "randaugment", "erasing": 0.25},
}
_GEOMETRIC_OPS = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


class ImageAugment(nn.Module):
    """Training augmentation: flips, random resized crop, rotation, colour jitter, RandAugment/TrivialAugment, erasing.

    `ImageAugment(preset="standard", hflip=0.5)` or in YAML under `data.init_args.train_transform` with
    `class_path: trainkit.augment.ImageAugment`. Arguments left at None take the preset's value (or stay off).
    """

    def __init__(
        self,
        preset: Literal["light", "standard", "strong"] | None = None,
        hflip: float | None = None,
        vflip: float | None = None,
        crop_scale: tuple[float, float] | None = None,
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        rotation: float | None = None,
        color_jitter: float | None = None,
        hue: float | None = None,
        auto: AutoAugment | None = None,
        auto_magnitude: int = 9,
        erasing: float | None = None,
        fill: float = 0.0,
    ) -> None:
        """Choose a preset and override single transforms.

        Args:
            preset: starting point: light (small crops and rotation), standard (+ colour jitter), strong (RandAugment,
                wide crops, random erasing).
            hflip: probability of a horizontal flip.
            vflip: probability of a vertical flip.
            crop_scale: random resized crop area range (e.g. [0.5, 1.0]), back to the input's size.
            crop_ratio: aspect-ratio range of that crop.
            rotation: maximum rotation in degrees (uniform in [-rotation, rotation]).
            color_jitter: strength of brightness, contrast and saturation jitter (0.2 = +-20%); needs [0, 1] images.
            hue: hue jitter in [0, 0.5].
            auto: RandAugment or TrivialAugment (masks only see their photometric operations).
            auto_magnitude: RandAugment magnitude (0-30; 9 is the paper's ImageNet value).
            erasing: probability of random erasing (cutout) of one rectangle of the image.
            fill: value of pixels that rotation brings in (the background value if images are standardized).
        """
        super().__init__()
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"augmentation preset '{preset}' is not known; choose one of: {', '.join(PRESETS)}")
        chosen = dict(PRESETS[preset]) if preset is not None else {}
        given = {"hflip": hflip, "vflip": vflip, "crop_scale": crop_scale, "rotation": rotation,
                 "color_jitter": color_jitter, "hue": hue, "auto": auto, "erasing": erasing}
        chosen.update({name: value for name, value in given.items() if value is not None})
        self.settings = chosen
        for name in ("hflip", "vflip", "erasing"):
            if not 0.0 <= chosen.get(name, 0.0) <= 1.0:
                raise ConfigError(f"augmentation {name}={chosen[name]} is not a probability; use a value in [0, 1]")
        self.crop_scale = chosen.get("crop_scale")
        self.crop_ratio = tuple(crop_ratio)
        self._crops: dict[tuple[int, ...], nn.Module] = {}  # one crop per input size, built on first use
        if self.crop_scale is not None and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ConfigError(f"augmentation crop_scale={list(self.crop_scale)} must satisfy 0 < low <= high <= 1")
        before: list[nn.Module] = []  # geometric steps that come before the crop
        if chosen.get("hflip"):
            before.append(v2.RandomHorizontalFlip(chosen["hflip"]))
        if chosen.get("vflip"):
            before.append(v2.RandomVerticalFlip(chosen["vflip"]))
        after: list[nn.Module] = []
        if chosen.get("rotation"):
            after.append(v2.RandomRotation(chosen["rotation"], fill=fill))
        if chosen.get("color_jitter") or chosen.get("hue"):
            strength = chosen.get("color_jitter") or 0.0
            after.append(v2.ColorJitter(strength, strength, strength, chosen.get("hue") or 0.0))
        self.before, self.after = _compose(before), _compose(after)
        self.auto = _auto_augment(chosen.get("auto"), auto_magnitude, fill)
        self.auto_photometric = _photometric_only(self.auto) if self.auto is not None else None
        self.erasing = v2.RandomErasing(chosen["erasing"]) if chosen.get("erasing") else None

    def forward(self, *inputs: Any) -> Any:
        """Augment an image, or an image with its masks/boxes (all geometric steps applied to every input alike)."""
        out = self.before(*inputs)
        if self.crop_scale is not None:
            # Crop back to the input's own size so the preset works for any image size without a size argument.
            size = tuple(get_size(next(x for x in _leaves(out) if isinstance(x, Tensor))))
            if size not in self._crops:
                self._crops[size] = v2.RandomResizedCrop(size, scale=self.crop_scale, ratio=self.crop_ratio)
            out = self._crops[size](*_args(out))
        out = self.after(*_args(out))
        if self.auto is not None:
            if any(isinstance(x, tv_tensors.Mask) for x in _leaves(out)):
                # torchvision's auto-augment refuses masks: geometric ops would need the mask too, so run only the
                # photometric ops on the image and pass the masks through.
                out = tuple(x if isinstance(x, tv_tensors.Mask) else self.auto_photometric(x) for x in _args(out))
            else:
                out = self.auto(*_args(out))
        if self.erasing is not None:
            out = self.erasing(*_args(out))
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.settings.items())


def _compose(steps: list[nn.Module]) -> nn.Module:
    return v2.Compose(steps) if steps else v2.Identity()


def _auto_augment(name: str | None, magnitude: int, fill: float) -> nn.Module | None:
    if name is None:
        return None
    if name == "randaugment":
        return v2.RandAugment(magnitude=magnitude, fill=fill)
    if name == "trivialaugment":
        return v2.TrivialAugmentWide(fill=fill)
    raise ConfigError(f"auto augmentation '{name}' is not known; choose randaugment or trivialaugment")


def _photometric_only(auto: nn.Module) -> nn.Module:
    """A copy of an auto-augment transform restricted to its colour operations (for images that have masks)."""
    import copy

    clone = copy.deepcopy(auto)
    space = type(auto)._AUGMENTATION_SPACE  # torchvision keeps the op table on the class; narrow it on the copy
    clone._AUGMENTATION_SPACE = {name: op for name, op in space.items() if name not in _GEOMETRIC_OPS}
    return clone


def _args(out: Any) -> tuple[Any, ...]:
    return out if isinstance(out, tuple) else (out,)


def _leaves(out: Any) -> list[Any]:
    return [x for item in _args(out) for x in (item.values() if isinstance(item, dict) else [item])]
