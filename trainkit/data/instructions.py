"""Instruction tuning data: instruction/input/output records (Alpaca's format) from JSON or JSONL, or generated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainkit.data._text import TextDataModule, TextEncoder, generation_batch, sequence_batch
from trainkit.data.text_tasks import generate_records
from trainkit.metrics.language import IGNORE


class InstructionDataModule(TextDataModule):
    """Prompt (the record in a template) + response token ids; the labels mask the prompt, so only the response
    counts in the loss. Val/test batches also carry the prompts alone, for exact match of generated answers."""

    fields = ("instruction", "output")
    optional_fields = ("input",)

    def __init__(self, packing: bool = False, **kwargs: Any) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            packing: join training examples into rows of up to max_length tokens (fewer pad tokens; attention
                then also sees the earlier examples of a row); batch_size then counts rows.
            **kwargs: TextDataModule's: path (records of {instruction, input, output}; input may be absent),
                val_path, test_path, val_fraction, test_fraction, split_seed, template, max_length, tokenizer,
                generated, generated_val, generated_test, batch_size, num_workers.
        """
        super().__init__(**kwargs)
        self.packing = packing

    def generated_records(self) -> dict[str, list[dict[str, str]]]:
        return generate_records(*self.generated, seed=self.split_seed)

    def encode(
        self, record: dict[str, str], format_prompt: Callable[[str, str], str], encoder: TextEncoder
    ) -> dict[str, Any] | None:
        prompt = format_prompt(record["instruction"], record["input"])
        prompt_ids = encoder.prompt(prompt)
        if prompt_ids is None:
            return None
        response = encoder.response(prompt_ids, record["output"])
        return {
            "input_ids": prompt_ids + response, "labels": [IGNORE] * len(prompt_ids) + response,
            "prompt_ids": prompt_ids, "prompt": prompt, "reference": record["output"],
        }

    def setup(self, stage: str | None = None) -> None:
        packed = bool(self.splits)
        super().setup(stage)
        if self.packing and not packed:
            self.splits["train"] = pack(self.splits["train"], self.max_length)

    def collate(self, examples: list[dict[str, Any]], train: bool) -> dict[str, Any]:
        batch = sequence_batch([e["input_ids"] for e in examples], [e["labels"] for e in examples],
                               self.tokenizer.pad_token_id)
        if not train:
            batch.update(generation_batch(examples, self.tokenizer.pad_token_id))
        return batch


def pack(examples: list[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    """Greedily join consecutive examples into rows of at most max_length tokens (an example is never split)."""
    rows: list[dict[str, list[int]]] = []
    for example in examples:
        if not rows or len(rows[-1]["input_ids"]) + len(example["input_ids"]) > max_length:
            rows.append({"input_ids": [], "labels": []})
        rows[-1]["input_ids"] += example["input_ids"]
        rows[-1]["labels"] += example["labels"]
    return rows
