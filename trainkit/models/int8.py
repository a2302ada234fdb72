"""Post-training int8 for CPU inference: static (calibrated) for convolutional networks, dynamic for the rest.

Static quantization goes through torch's FX graph mode (`prepare_fx`/`convert_fx`, x86 backend): conv-bn(-relu) are
fused, weights are int8 per output channel, activation ranges are observed on calibration batches, and convolutions
then run as int8 kernels. (torch 2.14 moved the PT2E path to torchao, not a dependency here; its CPU speed-up also
needs torch.compile.) Dynamic quantization only stores Linear weights in int8 and quantizes activations per batch:
right for MLPs and language models, no speed-up for a CNN, whose work is in its convolutions.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from trainkit.errors import ConfigError

BACKEND = "x86"
"""torch's quantized CPU engine (fbgemm for convolutions and Linear, oneDNN where faster) and its qconfig."""


def has_convolutions(model: nn.Module) -> bool:
    """Whether the network has convolutions, the layers static int8 speeds up."""
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def int8_convolutions(model: nn.Module) -> int:
    """How many convolutions of `model` run in int8 (torch.ao's quantized conv modules)."""
    from torch.ao.nn.quantized.modules.conv import _ConvNd as QuantizedConv

    return sum(isinstance(m, QuantizedConv) for m in model.modules())


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose Linear layers run in int8 (weights quantized ahead, activations per batch)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao eager quantization is deprecated, still works
        return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def quantize_static_int8(model: nn.Module, calibration: Iterable[Tensor]) -> nn.Module:
    """An int8 copy of `model` (eval mode), its activation ranges observed on the `calibration` input batches.

    Returns a torch.fx GraphModule: call it like the model; `torch.jit.trace` it to save a file that runs alone.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise ConfigError("static int8 needs calibration data and got none; pass --calibration_batches 8 or more")
    torch.backends.quantized.engine = BACKEND
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.ao's FX quantization is deprecated in favour of torchao, still works
        try:
            prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping(BACKEND), (first,))
        except Exception as error:  # noqa: BLE001  torch.fx raises many kinds when a forward cannot be traced
            raise ConfigError(f"static int8 cannot trace this network ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); use --quantize int8-dynamic "
                              "or export fp32") from error
        prepared(first)
        for batch in batches:
            prepared(batch)
        return convert_fx(prepared)
