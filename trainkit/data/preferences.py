"""Preference data: prompt/chosen/rejected records from JSON or JSONL, or generated (a correct answer against a
plausible wrong one), for DPO and reward models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainkit.data._text import IGNORE, TextDataModule, TextEncoder, generation_batch, sequence_batch
from trainkit.data.text_tasks import generate_records


class PreferenceDataModule(TextDataModule):
    """Each batch holds the chosen sequences, then the rejected ones (2N rows, prompt tokens masked in `labels`),
    so one forward pass scores both; val/test batches also carry the prompts, with `chosen` as the reference."""

    fields = ("prompt", "chosen", "rejected")

    def __init__(
        self,
        path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        template: str = "auto",
        max_length: int = 512,
        tokenizer: str | None = None,
        generated: int = 12000,
        generated_val: int = 256,
        generated_test: int = 512,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            path: JSON (a list) or JSONL (one object a line) of {prompt, chosen, rejected}. None: the generated
                sums and reversals of InstructionDataModule (same seed, same splits), the correct answer chosen
                over a plausible wrong one.
            val_path: validation records; None holds out val_fraction of `path`.
            test_path: test records; None holds out test_fraction of `path`.
            val_fraction: share of `path` held out for validation when there is no val_path.
            test_fraction: share of `path` held out for test when there is no test_path.
            split_seed: seed of that split (and of the generated records).
            template: how a prompt is shown to the model, as in InstructionDataModule (the prompt fills
                {instruction}; generated records also fill {input}); `raw` uses prompts as they are.
            max_length: tokens per sequence (prompt + answer, cut at the end); longer prompts are left out.
            tokenizer: `bytes`, or a Hugging Face tokenizer name; None: the model's.
            generated: records generated when there is no path.
            generated_val: generated validation pairs.
            generated_test: generated test pairs (prompts never seen in training).
            batch_size: pairs per batch.
            num_workers: loader workers; 0 is fastest for data held in memory.
        """
        super().__init__(path, val_path, test_path, val_fraction, test_fraction, split_seed, template, max_length,
                         tokenizer, batch_size, num_workers)
        self.generated = (generated, generated_val, generated_test)

    def generated_records(self) -> dict[str, list[dict[str, str]]]:
        generated = generate_records(*self.generated, seed=self.split_seed)
        return {
            split: [{"prompt": r["instruction"], "input": r["input"], "chosen": r["output"], "rejected": r["rejected"]}
                    for r in records]
            for split, records in generated.items()
        }

    def encode(
        self, record: dict[str, str], format_prompt: Callable[[str, str], str], encoder: TextEncoder
    ) -> dict[str, Any] | None:
        prompt = format_prompt(record["prompt"], record.get("input", ""))
        prompt_ids = encoder.prompt(prompt)
        if prompt_ids is None:
            return None
        example: dict[str, Any] = {"prompt_ids": prompt_ids, "prompt": prompt, "reference": record["chosen"]}
        for side in ("chosen", "rejected"):
            answer = encoder.response(prompt_ids, record[side])
            example[side] = (prompt_ids + answer, [IGNORE] * len(prompt_ids) + answer)
        return example

    def collate(self, examples: list[dict[str, Any]], train: bool) -> dict[str, Any]:
        rows = [e[side] for side in ("chosen", "rejected") for e in examples]
        batch = sequence_batch([ids for ids, _ in rows], [labels for _, labels in rows], self.tokenizer.pad_token_id)
        if not train:
            batch.update(generation_batch(examples, self.tokenizer.pad_token_id))
        return batch
