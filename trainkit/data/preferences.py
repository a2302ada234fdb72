"""Preference data: prompt/chosen/rejected records from JSON or JSONL, or generated (a correct answer against a
plausible wrong one), for DPO and reward models."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from trainkit.data._text import TextDataModule, TextEncoder, generation_batch, sequence_batch
from trainkit.data.text_tasks import generate_records, one_edit_wrongs, plausible_wrongs
from trainkit.errors import ConfigError
from trainkit.metrics.language import IGNORE


class PreferenceDataModule(TextDataModule):
    """Each batch holds the chosen sequences, then the rejected ones (2N rows, prompt tokens masked in `labels`),
    so one forward pass scores both; val/test batches also carry the prompts, with `chosen` as the reference.

    Its arguments are TextDataModule's: `path` holds records of {prompt, chosen, rejected}; without one, the generated
    sums and reversals of InstructionDataModule (same seed, same splits), the correct answer chosen over a plausible
    wrong one; `batch_size` counts pairs.
    """

    fields = ("prompt", "chosen", "rejected")

    def __init__(self, wrong_answers: int = 1, one_edit_wrongs: bool = False, **kwargs: Any) -> None:
        """Args:
        wrong_answers: generated data only: pairs per training prompt, each with another plausible wrong answer (at
            most all of them: 4 for most sums, 2-5 for a word); val and test keep one pair per prompt.
        one_edit_wrongs: generated data only: the training prompts' extra wrong answers come from every answer one
            edit away as well (a sum with any digit changed, a word with any two letters swapped), as a policy's
            samples are: a reward model that only saw the usual slips scores other wrong answers above right ones.
        **kwargs: TextDataModule's arguments.
        """
        if wrong_answers < 1:
            raise ConfigError(f"wrong_answers={wrong_answers}: give 1 or more pairs per training prompt")
        if one_edit_wrongs and wrong_answers < 2:
            raise ConfigError("one_edit_wrongs draws the extra wrong answers of --data.init_args.wrong_answers: "
                              "set wrong_answers to 2 or more (4 in configs/language/reward.yaml)")
        self.wrong_answers = wrong_answers
        self.one_edit_wrongs = one_edit_wrongs
        super().__init__(**kwargs)

    def generated_records(self) -> dict[str, list[dict[str, str]]]:
        generated = generate_records(*self.generated, seed=self.split_seed)
        rng = random.Random(self.split_seed)
        pool = one_edit_wrongs if self.one_edit_wrongs else plausible_wrongs
        splits = {}
        for split, records in generated.items():
            pairs = []
            for r in records:
                pair = {"prompt": r["instruction"], "input": r["input"], "chosen": r["output"]}
                wrong = [r["rejected"]]
                if split == "train" and self.wrong_answers > 1:
                    others = sorted(set(pool(r["instruction"], r["input"], r["output"])) - {r["rejected"]})
                    wrong += rng.sample(others, min(self.wrong_answers - 1, len(others)))
                pairs += [{**pair, "rejected": answer} for answer in wrong]
            splits[split] = pairs
        return splits

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
