"""Pieces the text DataModules share: JSON/JSONL records, prompt templates, tokenizing with truncation, padding."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader

from trainkit.data._common import SplitDataModule, make_loader, seeded_split
from trainkit.errors import ConfigError
from trainkit.metrics.language import IGNORE

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
TEMPLATES = ("auto", "alpaca", "chat", "raw")


def read_records(path: str | Path, fields: Sequence[str], optional: Sequence[str] = ()) -> list[dict[str, str]]:
    """Records of a JSONL file (one object a line) or a JSON file (a list of objects), each with every field in
    `fields` (and `optional` ones, empty when absent) as text."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file '{path}' does not exist; pass a JSON or JSONL file of {', '.join(fields)}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        items = _parse(text, path, "the file") if text.strip() else []
        rows = list(enumerate(items if isinstance(items, list) else [items], start=1))
    else:
        lines = enumerate(text.splitlines(), start=1)
        rows = [(n, _parse(line, path, f"line {n}")) for n, line in lines if line.strip()]
    if not rows:
        raise ConfigError(f"{path} holds no records; give it one JSON object per line with {', '.join(fields)}")
    records = []
    for number, row in rows:
        missing = [name for name in fields if not isinstance(row, dict) or name not in row]
        if missing:
            unit = "line" if path.suffix != ".json" else "record"
            raise ConfigError(
                f"{path} {unit} {number}: missing field '{missing[0]}'; each record needs {', '.join(fields)}"
                + (f" ({', '.join(optional)} optional)" if optional else "")
            )
        records.append({name: str(row.get(name) or "") for name in (*fields, *optional)})
    return records


def _parse(text: str, path: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} {where}: not valid JSON ({error.msg}); fix or remove it") from error


def split_records(records: list[dict[str, str]], fractions: tuple[float, float], seed: int) -> dict[str, list]:
    """A deterministic train/val/test split of one file's records (the same seed gives the same split)."""
    parts = seeded_split(len(records), fractions, seed, "records",
                         "pass val_path/test_path or lower val_fraction/test_fraction")
    picked = [[records[i] for i in part] for part in parts]
    return dict(zip(("val", "test", "train"), picked, strict=True))


def prompt_formatter(template: str, tokenizer: PreTrainedTokenizerBase) -> Callable[[str, str], str]:
    """(instruction, input) -> prompt text: the Alpaca template, the tokenizer's chat template, the text as it is
    (`raw`), or a format string with {instruction} and {input}. `auto` is the chat template when the tokenizer has
    one, else Alpaca."""
    has_chat = getattr(tokenizer, "chat_template", None) is not None
    if template == "chat" and not has_chat:
        raise ConfigError("template=chat but the tokenizer has no chat template; use template: alpaca (or auto)")
    if template == "chat" or (template == "auto" and has_chat):
        def chat(instruction: str, text: str) -> str:
            content = f"{instruction}\n\n{text}" if text else instruction
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        return chat
    if template in ("auto", "alpaca"):
        return lambda instruction, text: (ALPACA if text else ALPACA_NO_INPUT).format(
            instruction=instruction, input=text
        )
    if template == "raw":
        return lambda instruction, text: instruction + text
    if "{instruction}" not in template:
        raise ConfigError(f"template '{template}' is not one of {', '.join(TEMPLATES)} nor has {{instruction}}")
    return lambda instruction, text: template.format(instruction=instruction, input=text)


class TextEncoder:
    """Token ids of prompts and responses: the response ends with EOS, and prompt + response fit `max_length`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, chat: bool) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self.add_special = not chat  # a chat template writes its own BOS
        self.dropped = 0
        self.shortest_prompt: int | None = None

    def prompt(self, text: str) -> list[int] | None:
        """The prompt's ids, or None (counted in `dropped`) when no response token would fit after it."""
        ids = self.tokenizer(text, add_special_tokens=self.add_special)["input_ids"]
        self.shortest_prompt = min(len(ids), self.shortest_prompt or len(ids))
        if len(ids) >= self.max_length:
            self.dropped += 1
            return None
        return ids

    def response(self, prompt_ids: list[int], text: str) -> list[int]:
        """The response's ids plus EOS, cut so that prompt + response fit in max_length."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return ids[: self.max_length - len(prompt_ids)]

    def check(self, split: str, kept: int) -> None:
        """One line when max_length left out examples, and a ConfigError when it left none."""
        if kept == 0 and self.dropped:
            raise ConfigError(
                f"max_length={self.max_length} is shorter than every {split} prompt (the shortest has "
                f"{self.shortest_prompt} tokens); raise --data.init_args.max_length"
            )
        if self.dropped:
            rank_zero_warn(f"{split}: {self.dropped} examples whose prompt fills max_length={self.max_length} left out")
        self.dropped = 0


def pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> Tensor:
    """Rows of ids as one (N, longest) tensor, padded with `value` on the right (or the left, for generation)."""
    out = torch.full((len(rows), max(len(row) for row in rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            out[i, slice(out.shape[1] - len(row), None) if left else slice(0, len(row))] = torch.as_tensor(row)
    return out


def sequence_batch(ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_id: int) -> dict[str, Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (IGNORE on padding)."""
    input_ids = pad(ids, pad_id)
    mask = pad([[1] * len(row) for row in ids], 0)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": pad(labels, IGNORE)}


def generation_batch(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Left-padded prompts for batched greedy generation, with their text and reference answers."""
    prompts = [e["prompt_ids"] for e in examples]
    return {
        "prompt_ids": pad(prompts, pad_id, left=True),
        "prompt_mask": pad([[1] * len(p) for p in prompts], 0, left=True),
        "prompts": [e["prompt"] for e in examples],
        "references": [e["reference"] for e in examples],
    }


class TextDataModule(SplitDataModule):
    """Records from JSON/JSONL files (or generated), turned into token ids once in `setup`; subclasses say which
    fields a record has (`fields`), how one becomes an example (`encode`) and how examples batch (`collate`)."""

    fields: tuple[str, ...] = ()
    optional_fields: tuple[str, ...] = ()

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
            path: JSON (a list) or JSONL (one object a line) of records with the DataModule's fields. None:
                generated 2-digit sums and word reversals with exact answers (no download).
            val_path: validation records; None holds out val_fraction of `path`.
            test_path: test records; None holds out test_fraction of `path`.
            val_fraction: share of `path` held out for validation when there is no val_path.
            test_fraction: share of `path` held out for test when there is no test_path.
            split_seed: seed of that split (and of the generated records).
            template: auto (the tokenizer's chat template if it has one, else Alpaca), alpaca, chat, raw (the
                prompt as it is), or a format string with {instruction} and {input}, e.g. "{instruction} {input} =".
            max_length: tokens per example (prompt + answer, cut at the end); longer prompts are left out.
            tokenizer: `bytes`, or a Hugging Face tokenizer name; None: the model's.
            generated: records generated when there is no path (train gets those not in val/test).
            generated_val: generated validation records.
            generated_test: generated test records (prompts never seen in training).
            batch_size: examples per batch.
            num_workers: loader workers; 0 is fastest for data held in memory.
        """
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.path, self.val_path, self.test_path = path, val_path, test_path
        self.fractions = (val_fraction, test_fraction)
        self.split_seed = split_seed
        self.template = template
        self.max_length = max_length
        self.tokenizer_name = tokenizer
        self.generated = (generated, generated_val, generated_test)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.splits: dict[str, list[dict[str, Any]]] = {}

    def generated_records(self) -> dict[str, list[dict[str, str]]]:
        """train/val/test records when no `path` is given."""
        raise ConfigError(f"{type(self).__name__} needs --data.init_args.path (a JSON or JSONL file)")

    def encode(self, record: dict[str, str], format_prompt: Callable[[str, str], str], encoder: TextEncoder) -> Any:
        """One record as an example dict of token ids, or None when it does not fit max_length."""
        raise NotImplementedError

    def collate(self, examples: list[dict[str, Any]], train: bool) -> dict[str, Any]:
        """A batch of examples."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.tokenizer = self._find_tokenizer()
        format_prompt = prompt_formatter(self.template, self.tokenizer)
        chat = self.template == "chat" or (self.template == "auto" and self.tokenizer.chat_template is not None)
        encoder = TextEncoder(self.tokenizer, self.max_length, chat)
        for split, records in self._records().items():
            examples = [e for e in (self.encode(r, format_prompt, encoder) for r in records) if e is not None]
            encoder.check(split, len(examples))
            self.splits[split] = examples

    def _records(self) -> dict[str, list[dict[str, str]]]:
        if self.path is None:
            return self.generated_records()
        records = read_records(self.path, self.fields, self.optional_fields)
        if self.val_path is None or self.test_path is None:
            parts = split_records(records, self.fractions, self.split_seed)
        else:
            parts = {"train": records}
        for split, path in (("val", self.val_path), ("test", self.test_path)):
            if path is not None:
                parts[split] = read_records(path, self.fields, self.optional_fields)
        return parts

    def _find_tokenizer(self) -> PreTrainedTokenizerBase:
        """The named tokenizer, else the model's (the one it was built or trained with), else the byte tokenizer."""
        from trainkit.models.language import byte_tokenizer, load_tokenizer

        if self.tokenizer_name is not None:
            return load_tokenizer(self.tokenizer_name)
        model = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(model, "tokenizer", None) or byte_tokenizer()

    def _loader(self, split: str, train: bool) -> DataLoader:
        collate = functools.partial(self.collate, train=train)
        return make_loader(self.splits[split], self.batch_size, train, self.num_workers, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
