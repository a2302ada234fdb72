"""`trainkit export --format hf`: a language-model checkpoint as a Hugging Face folder that plain transformers loads.

The folder holds safetensors weights, config.json, generation_config.json and the tokenizer files. A LoRA run's
export keeps the base weights there and the adapters in PEFT's format under `adapter/`
(`PeftModel.from_pretrained(base, folder / "adapter")`); with `--merge` the adapters are folded into the weights.
The folder is loaded back and must generate the checkpoint's greedy tokens on a batch of its test prompts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainkit.errors import ConfigError
from trainkit.models.lora import merge_lora

ADAPTER_DIR = "adapter"


def export_hf(task: Any, batch: dict[str, Any], folder: Path, merge: bool, lora: dict[str, Any] | None) -> Tensor:
    """Write `task`'s causal LM and tokenizer to `folder`, load it back, and return (reference, loaded) greedy
    tokens stacked (2, N, T) for the caller's comparison."""
    model, tokenizer = getattr(task, "model", None), getattr(task, "tokenizer", None)
    if model is None or tokenizer is None or not hasattr(model, "save_pretrained"):
        raise ConfigError(
            f"--format hf exports language models (a Hugging Face model and tokenizer); this checkpoint holds a "
            f"{type(task).__name__}: use --format torchscript, onnx or state_dict"
        )
    if "prompt_ids" not in batch:
        raise ConfigError("--format hf checks the export on the run's test prompts; this DataModule has none")
    folder.mkdir(parents=True, exist_ok=True)
    has_adapters = lora is not None and any("lora_" in name for name, _ in model.named_parameters())
    model = copy.deepcopy(model)
    if has_adapters and merge:
        merge_lora(model)
    if has_adapters and not merge:
        adapters = {_peft_key(k): v.contiguous() for k, v in model.state_dict().items() if ".lora_" in k}
        _unload(model).save_pretrained(folder)
        _write_adapter(folder / ADAPTER_DIR, adapters, lora, folder)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    prompts, mask = batch["prompt_ids"], batch["prompt_mask"]
    reference = _greedy(task.model, prompts, mask, task)
    loaded = load_hf(folder)
    return torch.stack([reference, _greedy(loaded, prompts, mask, task)])


def load_hf(folder: Path) -> nn.Module:
    """The exported model as plain transformers (and peft, for an adapter folder) load it."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    if (folder / ADAPTER_DIR).is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder / ADAPTER_DIR)
    return model.eval()


def _greedy(model: nn.Module, prompts: Tensor, mask: Tensor, task: Any) -> Tensor:
    with torch.no_grad():
        out = model.generate(input_ids=prompts, attention_mask=mask, max_new_tokens=task.max_new_tokens,
                             do_sample=False, pad_token_id=task.tokenizer.pad_token_id,
                             eos_token_id=task.tokenizer.eos_token_id)
    tokens = torch.full((len(prompts), prompts.shape[1] + task.max_new_tokens), task.tokenizer.pad_token_id)
    tokens[:, : out.shape[1]] = out  # generation may stop early once every row has ended
    return tokens


def _peft_key(name: str) -> str:
    """`layers.0.q_proj.lora_A.default.weight` -> `base_model.model.layers.0.q_proj.lora_A.weight` (PEFT's names)."""
    return "base_model.model." + name.replace(".default.", ".")


def _unload(model: nn.Module) -> nn.Module:
    """`model` with each LoRA layer replaced by its base layer, unmerged, in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, layer in list(model.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer.get_base_layer())
    return model


def _write_adapter(folder: Path, adapters: dict[str, Tensor], lora: dict[str, Any], base: Path) -> None:
    """adapter_config.json + adapter_model.safetensors, as peft's `save_pretrained` writes them."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                        target_modules=lora["target_modules"], task_type="CAUSAL_LM",
                        base_model_name_or_path=str(base.resolve()))
    config.save_pretrained(str(folder))
    save_file(adapters, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
