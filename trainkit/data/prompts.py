"""Prompts with reference answers for the RL stage: the instruction records of InstructionDataModule, with the
prompts alone (left-padded, for sampling) in training batches too."""

from __future__ import annotations

from typing import Any

from trainkit.data.instructions import InstructionDataModule


class PromptDataModule(InstructionDataModule):
    """InstructionDataModule whose every batch also carries `prompt_ids`, `prompt_mask`, `prompts` and `references`
    (the policy samples answers to the prompts; a reward function may compare them with the references)."""

    def collate(self, examples: list[dict[str, Any]], train: bool) -> dict[str, Any]:
        return super().collate(examples, train=False)
