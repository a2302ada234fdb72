"""A reward model's held-out pairwise accuracy by kind of wrong answer (a sum off by -10, -1, +1 or +10; a word left
as it is or with two letters swapped), on the generated test pairs of configs/language/reward.yaml:

    OMP_NUM_THREADS=1 python -m benchmarks.reward_kinds runs/lm_reward/version_0/checkpoints/best.ckpt

test/reward_acc is one number over all kinds; this shows which kinds the model actually checks. It also ranks, for
the first 100 test sums, the correct sum among every number within 30 of it: what an RL policy's samples ask of the
model, beyond the pairs it was trained on. Not run in CI.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from trainkit.checkpoints import load_task
from trainkit.data import PreferenceDataModule
from trainkit.data._text import sequence_batch
from trainkit.tasks import RewardModule


def kind(record: dict[str, str]) -> str:
    """The kind of a generated pair's wrong answer."""
    if record["prompt"] == "add":
        return f"sum {int(record['rejected']) - int(record['chosen']):+d}"
    return "word as is" if record["rejected"] == record["input"] else "two letters swapped"


def held_out_pairs(generated: int = 12000) -> PreferenceDataModule:
    """The generated pairs of configs/language/reward.yaml, its held-out split set up."""
    data = PreferenceDataModule(template="{instruction} {input} =", max_length=32, batch_size=64,
                                tokenizer="bytes", generated=generated)
    data.setup("test")
    return data


def accuracy_by_kind(model: RewardModule, data: PreferenceDataModule) -> dict[str, tuple[float, int]]:
    """{kind: (share of test pairs whose chosen answer scores higher, pairs)}, with "all" over every pair."""
    records = data.generated_records()["test"]
    assert len(data.splits["test"]) == len(records), "max_length left test pairs out"
    wins: dict[str, list[bool]] = defaultdict(list)
    with torch.no_grad():
        scores = [model(b["input_ids"], b["attention_mask"]).chunk(2) for b in data.test_dataloader()]
    won = torch.cat([chosen > rejected for chosen, rejected in scores])
    for record, w in zip(records, won.tolist(), strict=True):
        wins[kind(record)].append(w)
        wins["all"].append(w)
    return {k: (sum(v) / len(v), len(v)) for k, v in sorted(wins.items())}


def sums_ranked_first(model: RewardModule, data: PreferenceDataModule, sums: int = 100, radius: int = 30) -> float:
    """Share of test sums whose correct answer scores above every other number within `radius` of it."""
    format_prompt, encoder = data.prompt_encoding()
    records = [r for r in data.generated_records()["test"] if r["prompt"] == "add"][:sums]
    first = 0
    for r in records:
        answer = int(r["chosen"])
        numbers = list(range(max(0, answer - radius), answer + radius + 1))
        prompt = encoder.prompt(format_prompt(r["prompt"], r["input"]))
        rows = [prompt + encoder.response(prompt, str(n)) for n in numbers]
        batch = sequence_batch(rows, rows, data.tokenizer.pad_token_id)
        with torch.no_grad():
            scores = model(batch["input_ids"], batch["attention_mask"])
        first += numbers[int(scores.argmax())] == answer
    return first / len(records)


def main(argv: list[str] | None = None) -> None:
    """Print the accuracy of each kind of wrong answer, and how often the correct sum is ranked first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a RewardModule checkpoint (best.ckpt of a reward run)")
    parser.add_argument("--generated", type=int, default=12000, help="the run's --data.init_args.generated")
    args = parser.parse_args(argv)
    model, data = load_task(args.checkpoint).eval(), held_out_pairs(args.generated)
    for name, (acc, count) in accuracy_by_kind(model, data).items():
        print(f"{name:20s} {acc:.3f}  ({count} pairs)")
    ranked = sums_ranked_first(model, data)
    print(f"correct sum scored above every number within 30 of it: {ranked:.0%} of 100 test sums")


if __name__ == "__main__":
    main()
