"""Generated instructions with exact answers (2-digit addition, reversing short words), for language-model demos
and tests that download nothing: every answer is checkable, and no val/test prompt appears in training."""

from __future__ import annotations

import itertools
import random
import string


def _add(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randrange(100), rng.randrange(100)
    return "add", f"{a}+{b}", str(a + b)


def _reverse(rng: random.Random) -> tuple[str, str, str]:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 5)))
    return "reverse", word, word[::-1]


def plausible_wrongs(task: str, text: str, answer: str) -> list[str]:
    """Every wrong answer of the kind a model makes: a sum off by one or by a carry, a word half reversed."""
    if task == "add":
        return [str(int(answer) + d) for d in (-10, -1, 1, 10) if int(answer) + d >= 0]
    swapped = [_swap(answer, i, i + 1) for i in range(len(answer) - 1)]
    options = [w for w in [text, *swapped] if w != answer]  # may repeat a word: kept, for the same draws by seed
    return options or [answer + answer[-1]]


def one_edit_wrongs(task: str, text: str, answer: str) -> list[str]:
    """`plausible_wrongs` and every answer one edit away: a sum with any one digit changed, a word with any two
    letters swapped; a reward model trained on these checks the whole answer, not only the usual slips."""
    if task == "add":
        edits = {answer[:i] + d + answer[i + 1:] for i in range(len(answer)) for d in string.digits}
        edits = {e for e in edits if e == "0" or not e.startswith("0")}
    else:
        edits = {_swap(answer, i, j) for i, j in itertools.combinations(range(len(answer)), 2)}
    return sorted((edits | set(plausible_wrongs(task, text, answer))) - {answer})


def _swap(word: str, i: int, j: int) -> str:
    letters = list(word)
    letters[i], letters[j] = letters[j], letters[i]
    return "".join(letters)


def plausible_wrong(task: str, text: str, answer: str, rng: random.Random) -> str:
    """One of `plausible_wrongs`, drawn with `rng`."""
    return rng.choice(plausible_wrongs(task, text, answer))


def generate_records(count: int, val_count: int, test_count: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """`count` distinct (instruction, input) records split into train/val/test; each record also carries a
    plausible wrong answer (`rejected`) for preference pairs. The same seed gives the same records."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    records: list[dict[str, str]] = []
    makers = (_add, _reverse)
    # 10,000 sums and 26^3 + 26^4 + 26^5 words: far more than `count`, so the loop ends quickly.
    while len(records) < count:
        task, text, answer = makers[len(records) % len(makers)](rng)
        if (task, text) in seen:
            continue
        seen.add((task, text))
        records.append({
            "instruction": task, "input": text, "output": answer,
            "rejected": plausible_wrong(task, text, answer, rng),
        })
    rng.shuffle(records)
    return {
        "val": records[:val_count],
        "test": records[val_count: val_count + test_count],
        "train": records[val_count + test_count:],
    }
