"""Instruction and preference data: generated tasks, templates, masking, truncation, packing and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainkit.data import InstructionDataModule, PreferenceDataModule
from trainkit.data.text_tasks import generate_records, one_edit_wrongs, plausible_wrongs
from trainkit.errors import ConfigError
from trainkit.metrics.language import IGNORE

SMALL = {"generated": 300, "generated_val": 20, "generated_test": 40}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_generated_test_prompts_never_appear_in_training() -> None:
    splits = generate_records(2000, 100, 200, seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1700, 100, 200]
    key = lambda r: (r["instruction"], r["input"])  # noqa: E731
    train = {key(r) for r in splits["train"]}
    assert not train & {key(r) for r in splits["test"]} and not train & {key(r) for r in splits["val"]}
    for record in splits["train"] + splits["test"]:
        a, _, b = record["input"].partition("+")
        expected = str(int(a) + int(b)) if record["instruction"] == "add" else record["input"][::-1]
        assert record["output"] == expected and record["rejected"] != expected
    assert generate_records(2000, 100, 200, seed=3) == splits


def test_only_response_tokens_are_labelled_and_eval_batches_carry_prompts() -> None:
    data = InstructionDataModule(template="{instruction} {input} =", max_length=32, batch_size=4, **SMALL)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    tokenizer = data.tokenizer
    for row in range(4):
        labels = batch["labels"][row]
        answer = tokenizer.decode(labels[labels != IGNORE])
        prompt = batch["prompts"][row]
        assert answer == batch["references"][row] + tokenizer.eos_token
        length = int(batch["attention_mask"][row].sum())
        assert tokenizer.decode(batch["input_ids"][row, :length]) == prompt + answer
        # generation prompts are left-padded: the prompt ends at the last column
        assert tokenizer.decode(batch["prompt_ids"][row][batch["prompt_mask"][row].bool()]) == prompt
    assert "prompt_ids" not in next(iter(data.train_dataloader()))


def test_alpaca_template_and_packing(tmp_path: Path) -> None:
    rows = [{"instruction": f"Say {i}", "output": str(i)} for i in range(40)]
    rows[0]["input"] = "politely"
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    data = InstructionDataModule(path=str(path), max_length=512, packing=True, batch_size=2)
    data.setup("fit")
    prompts = [e["prompt"] for e in data.splits["val"] + data.splits["test"]]
    assert all(p.startswith("Below is an instruction") and p.endswith("### Response:\n") for p in prompts)
    packed = data.splits["train"]
    assert len(packed) <= 18 and all(len(row["input_ids"]) <= 512 for row in packed)
    assert sum(sum(1 for t in row["labels"] if t == data.tokenizer.eos_token_id) for row in packed) == 36


def test_preference_batches_hold_chosen_then_rejected() -> None:
    data = PreferenceDataModule(template="{instruction} {input} =", max_length=32, batch_size=3, **SMALL)
    data.setup("fit")
    batch = next(iter(data.test_dataloader()))
    tokenizer = data.tokenizer
    texts = [tokenizer.decode(row[row != IGNORE]) for row in batch["labels"]]
    assert [t.removesuffix(tokenizer.eos_token) for t in texts[:3]] == batch["references"]
    assert all(chosen != rejected for chosen, rejected in zip(texts[:3], texts[3:], strict=True))


def test_wrong_answers_give_each_training_prompt_several_distinct_wrong_answers() -> None:
    one = PreferenceDataModule(**SMALL).generated_records()
    four = PreferenceDataModule(wrong_answers=4, **SMALL).generated_records()
    assert four["val"] == one["val"] and four["test"] == one["test"]  # held-out pairs as before
    by_prompt: dict[tuple[str, str], list[str]] = {}
    for r in four["train"]:
        by_prompt.setdefault((r["prompt"], r["input"], r["chosen"]), []).append(r["rejected"])
    assert len(by_prompt) == len(one["train"])
    for (task, text, answer), wrong in by_prompt.items():
        assert len(set(wrong)) == len(wrong) == min(4, len(set(plausible_wrongs(task, text, answer))))
        assert answer not in wrong and set(wrong) <= set(plausible_wrongs(task, text, answer))
    with pytest.raises(ConfigError, match="wrong_answers=0"):
        PreferenceDataModule(wrong_answers=0)


def test_one_edit_wrongs_change_one_digit_or_swap_two_letters() -> None:
    sums = one_edit_wrongs("add", "38+2", "40")
    assert {"39", "41", "30", "50", "45", "90"} <= set(sums) and not {"40", "04", "00"} & set(sums)
    assert len(sums) == 18  # 8 other tens and 9 other units digits, and 39 (a carry) from plausible_wrongs
    assert one_edit_wrongs("reverse", "cba", "abc") == ["acb", "bac", "cba"]
    one = PreferenceDataModule(wrong_answers=4, **SMALL).generated_records()
    wide = PreferenceDataModule(wrong_answers=4, one_edit_wrongs=True, **SMALL).generated_records()
    assert wide["val"] == one["val"] and wide["test"] == one["test"]  # held-out pairs as before
    assert all(r["rejected"] in one_edit_wrongs(r["prompt"], r["input"], r["chosen"]) for r in wide["train"])
    beyond = [r for r in wide["train"] if r["rejected"] not in plausible_wrongs(r["prompt"], r["input"], r["chosen"])]
    assert len(beyond) > len(wide["train"]) / 4
    with pytest.raises(ConfigError, match="one_edit_wrongs.*wrong_answers to 2 or more"):
        PreferenceDataModule(one_edit_wrongs=True)


def test_long_responses_are_cut_to_max_length(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "x" * 50, "rejected": "y"}] * 20)
    data = PreferenceDataModule(path=str(path), template="raw", max_length=10, batch_size=2)
    data.setup("fit")
    assert all(len(e["chosen"][0]) == 10 and len(e["rejected"][0]) == 3 for e in data.splits["train"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n', "line 2: missing field 'output'"),
        ("", "holds no records"),
        ('{"instruction": "a", "output": "b"}\nnot json\n', "line 2: not valid JSON"),
    ],
    ids=["missing-field", "empty", "not-json"],
)
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        InstructionDataModule(path=str(path)).setup("fit")


def test_max_length_shorter_than_every_prompt() -> None:
    data = InstructionDataModule(template="{instruction} {input} =", max_length=4, **SMALL)
    with pytest.raises(ConfigError, match=r"max_length=4 is shorter than every \w+ prompt .* raise --data"):
        data.setup("fit")


def test_a_jsonl_with_bytes_that_are_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    from trainkit.data._text import read_records

    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "d"}\n')
    with pytest.raises(ConfigError, match=rf"^{path} line 2: not UTF-8 text \(byte 0xe9 at column 21\); save it"):
        read_records(path, ("instruction", "output"))
