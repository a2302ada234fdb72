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


def newest_run(experiment: Path) -> Path:
    """The newest run folder under an experiment (`trainkit test` writes to <experiment>/test/version_N)."""
    return max(experiment.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime).parent


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
    """Zero-shot test, LoRA fit, predict (exact match), hf export --merge, transformers comparison; prints and writes
    results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/smollm_bench"))
    parser.add_argument("--train", type=int, default=960)
    parser.add_argument("--val", type=int, default=32)
    parser.add_argument("--test", type=int, default=96)
    parser.add_argument("--steps", type=int, default=None, help="cap on training steps (limit_train_batches)")
    parser.add_argument("--eval", type=int, default=None, help="test prompts answered after SFT (default: all)")
    parser.add_argument("--compare", type=int, default=8, help="prompts answered by both trainkit and transformers")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = ["--config", str(CONFIG), "--runs_dir", str(out), *write_records(out, args.train, args.val, args.test),
              "--trainer.enable_progress_bar", "false"]
    saved = out / "results.json"  # a rerun keeps the stages already measured (the zero-shot pass takes minutes)
    results: dict[str, object] = json.loads(saved.read_text()) if saved.is_file() else {}
    results.update({"load_average_start": os.getloadavg()[0], "train": args.train, "test": args.test})

    if "zero_shot" not in results:
        wall, _ = trainkit(out, "zero_shot", "test", *common, "--experiment", "smollm_zero_shot")
        results["zero_shot"] = {"exact_match": metric(newest_run(out / "smollm_zero_shot"), "test/exact_match"),
                                "wall_s": round(wall), "prompts_per_s": round(args.test / wall, 2)}
        saved.write_text(json.dumps(results, indent=2))
    print("zero-shot", results["zero_shot"], flush=True)

    # After SFT, one predict pass over the test prompts gives both the exact match and the answers to compare.
    steps = ["--trainer.limit_train_batches", str(args.steps)] if args.steps else []
    wall, log = trainkit(out, "sft", "fit", *common, *steps, "--trainer.num_sanity_val_steps", "0",
                         "--trainer.limit_val_batches", "1", "--test_after_fit", "false", "--experiment", "smollm_sft")
    run = newest_run(out / "smollm_sft")
    tokens = re.search(r"([\d.]+) tokens/s", log)
    results["sft"] = {"steps": args.steps, "wall_s": round(wall), "train_tokens_per_s": float(tokens[1]) if tokens
                      else None, "train_loss_last": metric(run, "train/loss_step")}
    saved.write_text(json.dumps(results, indent=2))
    print("LoRA SFT", results["sft"], flush=True)

    ckpt = str(run / "checkpoints" / "best.ckpt")
    limit = ["--trainer.limit_predict_batches", str(-(-args.eval // 8))] if args.eval else []  # 8 prompts a batch
    wall, _ = trainkit(out, "predict", "predict", *common, "--experiment", "smollm_sft", "--ckpt_path", ckpt, *limit)
    predicted = [json.loads(line) for line in next(run.rglob("predictions.jsonl")).read_text().splitlines()]
    exact = sum(p["generated"].strip() == p["reference"].strip() for p in predicted) / len(predicted)
    results["sft"].update({"exact_match": exact, "test_prompts": len(predicted), "test_wall_s": round(wall),
                           "prompts_per_s": round(len(predicted) / wall, 2)})
    saved.write_text(json.dumps(results, indent=2))
    print("after LoRA SFT", results["sft"], flush=True)

    wall, _ = trainkit(out, "export", "export", "--ckpt_path", ckpt, "--format", "hf", "--merge", "true")
    chosen = predicted[: args.compare]
    answers = hf_answers(run / "export" / "best-merged-hf", [p["prompt"] for p in chosen], max_new_tokens=8)
    same = sum(a == p["generated"] for a, p in zip(answers, chosen, strict=True))
    results["export"] = {"wall_s": round(wall), "compared": len(chosen), "same_answers": same,
                         "examples": [{"prompt_end": p["prompt"][-40:], "trainkit": p["generated"], "transformers": a}
                                      for a, p in zip(answers[:3], chosen, strict=False)]}
    results["load_average_end"] = os.getloadavg()[0]
    print("export", results["export"], flush=True)
    saved.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
