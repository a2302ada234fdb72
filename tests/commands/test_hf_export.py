"""`trainkit export --format hf`: a tiny LoRA SFT run exported as a Hugging Face folder (adapters in PEFT's format, or
merged) that plain transformers loads and that generates the checkpoint's greedy tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tasks.test_language import SFT, TINY_CLI
from trainkit.checkpoints import load_task
from trainkit.commands.export import export
from trainkit.commands.hf_export import export_hf, load_hf
from trainkit.errors import ConfigError


@pytest.mark.slow
def test_hf_export_round_trip_with_lora_adapters_and_merged(workdir: Path, trainkit) -> None:
    lora = ["--lora.r", "4", "--lora.target_modules", "[q_proj, v_proj]", "--lora.lora_alpha", "32"]
    assert trainkit("fit", "--config", SFT, *TINY_CLI, *lora, "--trainer.limit_val_batches", "1",
                    "--test_after_fit", "false", "--model.init_args.optimizer.lr", "0.03") == 0
    best = workdir / "runs" / "lm_sft" / "version_0" / "checkpoints" / "best.ckpt"
    adapter = export(str(best), format="hf")
    assert adapter.path.name == "best-hf" and adapter.agreement == 1
    names = {p.name for p in adapter.path.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "adapter"} <= names
    saved = {p.name for p in (adapter.path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= saved
    merged = export(str(best), format="hf", merge=True)
    assert merged.path.name == "best-merged-hf" and merged.agreement == 1
    assert not (merged.path / "adapter").exists()
    # by hand, with plain transformers: the same next-token logits as the trained checkpoint, which LoRA changed
    from transformers import AutoModelForCausalLM, AutoTokenizer

    task = load_task(best).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged.path)
    ids = torch.tensor([tokenizer("add 12+34 =")["input_ids"]])
    with torch.no_grad():
        expected = task(ids)
        for folder in (adapter.path, merged.path):
            torch.testing.assert_close(load_hf(folder)(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
        base = AutoModelForCausalLM.from_pretrained(adapter.path)(input_ids=ids).logits  # without the adapters
    assert not torch.allclose(base, expected, atol=1e-4)  # the adapters matter, so the check above means something


def test_hf_export_of_a_model_that_is_no_language_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--format hf exports language models .* holds a Linear"):
        export_hf(torch.nn.Linear(2, 2), {}, tmp_path / "out", merge=False, lora=None)
    assert not (tmp_path / "out").exists()
