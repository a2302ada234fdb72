"""`trainkit lora-merge CHECKPOINT [--output PATH]`: fold a LoRA run's adapters into the base weights.

The result is a plain checkpoint of the same task, with no adapter layers left and the same outputs: it loads
with `trainkit test/predict --ckpt_path` and goes to export like any other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from trainkit.checkpoints import load_checkpoint, load_task
from trainkit.errors import ConfigError
from trainkit.models.lora import CHECKPOINT_KEY, MERGED, merge_lora, saved_lora_settings


def main(argv: list[str]) -> None:
    """Merge the adapters of a checkpoint into its base weights and save the plain checkpoint."""
    parser = argparse.ArgumentParser(prog="trainkit lora-merge", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint of a run trained with --lora.r")
    parser.add_argument("--output", default=None, help="where to write; default <checkpoint>-merged.ckpt beside it")
    args = parser.parse_args(argv)
    path = Path(args.checkpoint)
    model = load_task(path)
    checkpoint = load_checkpoint(path)
    settings = saved_lora_settings(checkpoint)
    if settings is None:
        raise ConfigError(f"checkpoint '{path}' holds no LoRA adapters to merge; pass the checkpoint of a --lora.r run")
    merge_lora(model)
    checkpoint["state_dict"] = model.state_dict()
    checkpoint["callbacks"][CHECKPOINT_KEY] = {MERGED: True}
    for key in ("optimizer_states", "lr_schedulers"):  # they describe adapter-only training, not these weights
        checkpoint.pop(key, None)
    output = Path(args.output) if args.output else path.with_name(f"{path.stem}-merged.ckpt")
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, output)
    print(f"trainkit: LoRA r={settings.r} adapters merged into the base weights: {output}", flush=True)
