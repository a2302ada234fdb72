"""SmolLM2-135M-Instruct offline: zero-shot exact match, LoRA SFT, exact match again, then the merged HF export
loaded by plain transformers answering as `trainkit predict` does.

    make smollm && OMP_NUM_THREADS=2 python -m benchmarks.smollm_sft --out runs/smollm_bench

The generated sums and reversals (trainkit.data.text_tasks), with their instructions written out as sentences so the
zero-shot model knows what is asked; held-out val/test prompts never appear in training. Not run in CI (the model is
a 98 MB package and the run takes tens of minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/language/smollm_sft_lora.yaml"
INSTRUCTIONS = {
    "add": "Add these two numbers. Reply with the sum only.",
    "reverse": "Write this word backwards, letter by letter. Reply with the reversed word only.",
}


def write_records(out: Path, train: int, val: int, test: int) -> list[str]:
    """train/val/test JSONL of the generated tasks; returns the data flags that point at them."""
    from trainkit.data.text_tasks import generate_records

    flags = []
    for split, records in generate_records(train + val + test, val, test, seed=0).items():
        path = out / f"{split}.jsonl"
        with path.open("w") as file:
            for r in records:
                file.write(json.dumps({"instruction": INSTRUCTIONS[r["instruction"]], "input": r["input"],
                                       "output": r["output"]}) + "\n")
        flags += [f"--data.init_args.{'path' if split == 'train' else split + '_path'}", str(path)]
    return flags


def trainkit(out: Path, name: str, *args: str) -> tuple[float, str]:
    """Run `trainkit ARGS`, its output logged to out/<name>.log; (wall seconds, output)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trainkit", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        sys.exit(f"{name} failed (exit {done.returncode}); see {out / (name + '.log')}")
    return wall, done.stdout + done.stderr


def metric(run: Path, name: str) -> float:
    """The last logged value of `name` in a run's metrics.csv."""
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get(name)]
    return float(rows[-1][name])


def hf_answers(folder: Path, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers of the exported folder with plain transformers, one prompt at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    answers = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)  # the chat template wrote the BOS
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def main() -> None:
    """Zero-shot test, LoRA fit (+ test), hf export --merge, predict, transformers comparison; prints and writes
    results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/smollm_bench"))
    parser.add_argument("--train", type=int, default=960)
    parser.add_argument("--val", type=int, default=32)
    parser.add_argument("--test", type=int, default=96)
    parser.add_argument("--compare", type=int, default=8, help="prompts answered by both trainkit and transformers")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = ["--config", str(CONFIG), "--runs_dir", str(out), *write_records(out, args.train, args.val, args.test),
              "--trainer.enable_progress_bar", "false"]
    results: dict[str, object] = {"load_average_start": os.getloadavg()[0], "train": args.train, "test": args.test}

    wall, _ = trainkit(out, "zero_shot", "test", *common, "--experiment", "smollm_zero_shot")
    results["zero_shot"] = {"exact_match": metric(out / "smollm_zero_shot" / "version_0", "test/exact_match"),
                            "wall_s": round(wall), "prompts_per_s": round(args.test / wall, 2)}
    print("zero-shot", results["zero_shot"], flush=True)

    wall, log = trainkit(out, "sft", "fit", *common, "--experiment", "smollm_sft")
    run = out / "smollm_sft" / "version_0"
    tokens = re.search(r"([\d.]+) tokens/s", log)
    results["sft"] = {"exact_match": metric(run, "test/exact_match"), "val_exact_match": metric(run,
                      "val/exact_match"), "wall_s": round(wall), "train_tokens_per_s": float(tokens[1]) if tokens
                      else None, "train_loss_last": metric(run, "train/loss_step")}
    print("after LoRA SFT", results["sft"], flush=True)

    ckpt = str(run / "checkpoints" / "best.ckpt")
    wall, _ = trainkit(out, "export", "export", "--ckpt_path", ckpt, "--format", "hf", "--merge")
    folder = run / "export" / "best-merged-hf"
    wall_predict, _ = trainkit(out, "predict", "predict", *common, "--experiment", "smollm_sft", "--ckpt_path", ckpt)
    predicted = [json.loads(line) for line in next(run.rglob("predictions.jsonl")).read_text().splitlines()]
    chosen = predicted[: args.compare]
    answers = hf_answers(folder, [p["prompt"] for p in chosen], max_new_tokens=8)
    same = sum(a == p["generated"] for a, p in zip(answers, chosen, strict=True))
    results["export"] = {"wall_s": round(wall), "predict_wall_s": round(wall_predict), "compared": len(chosen),
                         "same_answers": same, "examples": [{"prompt_end": p["prompt"][-40:], "trainkit":
                                                            p["generated"], "transformers": a}
                                                           for a, p in zip(answers[:3], chosen, strict=False)]}
    results["load_average_end"] = os.getloadavg()[0]
    print("export", results["export"], flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
