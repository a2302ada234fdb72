"""`trainkit plan`: the plan of a tiny digits run (FSDP over 4 devices), bad input, and the CPU memory estimate
against the peak RSS growth of a real fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_DIGITS

FSDP = REPO / "configs" / "trainer" / "fsdp.yaml"


@pytest.mark.slow  # ~8 s of CPU: a CLI build, two probe steps and the footprint's three passes
def test_plan_of_a_sharded_run(trainkit, workdir, capsys) -> None:  # noqa: ANN001
    code = trainkit("plan", *TINY_DIGITS, "--config", FSDP, "--device", "a100-80gb", "--devices", "4",
                    "--probe_steps", "1", "--mfu", "0.5", "--json")
    out = capsys.readouterr().out
    assert code == 0
    plan = json.loads(out[out.index("{\n"):])
    params = plan["parameters"]["trainable"] + plan["parameters"]["frozen"]
    memory = plan["memory_bytes"]
    assert (plan["strategy"], plan["devices"], plan["batch_per_device"]) == ("fsdp", 4, 64)
    assert memory["weights"] == 4 * params / 4  # fp32, sharded over the 4 devices
    assert memory["optimizer"] == 2 * 4 * plan["parameters"]["trainable"] / 4  # AdamW's two moments, sharded
    assert memory["activations"] > 0 and plan["flops_per_sample"] > 0
    assert (plan["samples_per_epoch"], plan["run_samples"]) == (4 * 64, 4 * 64)  # 4 batches of 64, one epoch
    seconds = plan["samples_per_epoch"] * plan["flops_per_sample"] / (4 * 312e12 * 0.5)  # 4 A100s at bf16... fp32
    assert plan["epoch_seconds"] == pytest.approx(seconds * 312 / 19.5)  # 32-true: the fp32 peak, 19.5 TFLOP/s
    fits = plan["largest_batch_per_device"]
    assert fits > 64 and memory["total"] < 0.9 * 80 * 2**30
    assert plan["probe"]["step_seconds"] > 0 and plan["probe"]["measured_mfu"] > 0
    assert not (workdir / "runs").exists() and not list(workdir.rglob("*.yaml")) and not list(workdir.rglob("*.ckpt"))


def test_bad_device_or_mfu_is_one_line(trainkit, workdir, capsys) -> None:  # noqa: ANN001
    assert trainkit("plan", *TINY_DIGITS, "--device", "a100-80") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean a100-80gb" in err
    assert trainkit("plan", *TINY_DIGITS, "--mfu", "1.5") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mfu 1.5 must be in (0, 1]" in err


# Real fits in a process of their own that has imported nothing but trainkit: each config's fit runs in a fork of it
# (so each starts from the same clean heap, as a fresh `trainkit fit` would, and one interpreter serves both). Linux's
# peak RSS (VmHWM) is reset when training starts, before any callback copies the weights, and read when it ends
# (step 1 allocates the optimizer state, step 2 has every part).
_FIT_PEAK_RSS = """
import json, os, sys
from lightning.pytorch import Callback
from trainkit.cli import TrainkitCLI

def status(key):
    with open("/proc/self/status") as lines:
        return float(next(line for line in lines if line.startswith(key + ":")).split()[1]) * 1024

class PeakGrowth(Callback):
    def on_train_start(self, trainer, module):
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        self.base = status("VmRSS")

    def on_train_end(self, trainer, module):
        print("GROWTH", status("VmHWM") - self.base, flush=True)

for args in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        cli = TrainkitCLI(args=args, run=False)
        cli.trainer.callbacks.insert(0, PeakGrowth())
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit(f"the fit of {args} failed")
"""
_FEW_STEPS = ["--trainer.max_steps", "2", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0",
              "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false", "--trainer.enable_checkpointing",
              "false", "--trainer.enable_progress_bar", "false", "--doctor.preflight", "false"]
_CONFIGS = {
    "digits-resnet18": ["--config", REPO / "configs/classification/digits.yaml", "--data.init_args.batch_size", "32"],
    "diabetes-wide-mlp": ["--config", REPO / "configs/regression/diabetes.yaml", "--model.init_args.hidden_sizes",
                          "[4096,4096]"],
}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_cpu_memory_estimate_against_real_fits(trainkit, workdir, capsys) -> None:  # noqa: ANN001
    """A CNN and a wide MLP: the estimate is within 25% of what their fits grow by."""
    fits = json.dumps([[*map(str, config), *_FEW_STEPS] for config in _CONFIGS.values()])
    fit = subprocess.run([sys.executable, "-c", _FIT_PEAK_RSS, fits], capture_output=True, text=True, timeout=600,
                         cwd=workdir)
    assert fit.returncode == 0, fit.stderr[-2000:]
    growths = [float(line.split()[1]) for line in fit.stdout.splitlines() if line.startswith("GROWTH")]
    assert len(growths) == len(_CONFIGS), fit.stdout[-2000:]
    for (name, config), measured in zip(_CONFIGS.items(), growths, strict=True):
        assert trainkit("plan", *config, "--device", "cpu", "--probe_steps", "0", "--json") == 0
        out = capsys.readouterr().out
        memory = json.loads(out[out.index("{\n"):])["memory_bytes"]
        estimated = memory["total"] - memory["weights"]  # the weights are there before training starts
        figures = f"{name}: peak RSS growth {measured / 2**20:.1f} MiB, estimated {estimated / 2**20:.1f} MiB"
        assert estimated == pytest.approx(measured, rel=0.25), figures
