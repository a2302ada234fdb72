"""Every schedule's LR at every optimizer step of a real Trainer run, against its formula (or torch's scheduler)."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, ExponentialLR, MultiStepLR, OneCycleLR, StepLR

from tests.optim._tiny import TinyTask, fit
from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig, SchedulerConfig, known_schedules

LR = 0.1
T = 20  # 2 epochs x 10 batches


def run(name: str, epochs: int = 2, **kwargs) -> list[float]:
    """LR of each optimizer step when training TinyTask with SGD at LR and schedule `name`."""
    model = TinyTask(OptimizerConfig(name="momentum", lr=LR, weight_decay=0.0), SchedulerConfig(name=name, **kwargs))
    return fit(model, epochs=epochs).first_group


def torch_reference(make, steps: int = T) -> list[float]:
    """LRs of a torch scheduler over `steps` steps, from an optimizer at LR."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR, momentum=0.9)
    scheduler = make(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_constant() -> None:
    assert run("constant") == pytest.approx([LR] * T)


def test_warmup_cosine_start_peak_floor() -> None:
    lrs = run("warmup_cosine", warmup=4, warmup_start_ratio=0.1, min_lr_ratio=0.01)
    assert len(lrs) == T
    assert lrs[0] == pytest.approx(0.1 * LR)  # start
    assert lrs[2] == pytest.approx((0.1 + 0.9 * 2 / 4) * LR)  # linear warmup
    assert lrs[4] == pytest.approx(LR)  # peak at the end of warmup
    assert max(lrs) == pytest.approx(LR)
    assert lrs[12] == pytest.approx(LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (12 - 4) / (T - 1 - 4)))))
    assert lrs[-1] == pytest.approx(0.01 * LR)  # floor at the last step


def test_warmup_as_fraction_and_default() -> None:
    lrs = run("warmup_linear", warmup=0.25)  # 5 of 20 steps
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(LR)
    assert lrs[12] == pytest.approx(LR * (1 - (12 - 5) / (T - 1 - 5)))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    default = run("warmup_cosine")  # 5% of 20 = 1 warmup step
    assert default[0] == 0.0 and default[1] == pytest.approx(LR)


def test_cosine_and_linear() -> None:
    cos = run("cosine", min_lr_ratio=0.1)
    assert cos == pytest.approx([LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / (T - 1)))) for t in range(T)])
    lin = run("linear")
    assert lin == pytest.approx([LR * (1 - t / (T - 1)) for t in range(T)])


def test_step_multistep_exponential_match_torch() -> None:
    assert run("step", kwargs={"step_size": 6, "gamma": 0.5}) == pytest.approx(
        torch_reference(lambda o: StepLR(o, step_size=6, gamma=0.5)))
    # milestones as fractions of the run (0.5 -> step 10, 0.75 -> step 15) or as counts
    assert run("multistep", kwargs={"milestones": [0.5, 0.75]}) == pytest.approx(
        torch_reference(lambda o: MultiStepLR(o, milestones=[10, 15], gamma=0.1)))
    assert run("multistep", kwargs={"milestones": [3, 7], "gamma": 0.2}) == pytest.approx(
        torch_reference(lambda o: MultiStepLR(o, milestones=[3, 7], gamma=0.2)))
    assert run("exponential", kwargs={"gamma": 0.9}) == pytest.approx(
        torch_reference(lambda o: ExponentialLR(o, gamma=0.9)))
    default = run("exponential")  # gamma chosen so the last step reaches 1% of the LR
    assert default[-1] == pytest.approx(0.01 * LR)


def test_cosine_restarts_match_torch() -> None:
    lrs = run("cosine_restarts", min_lr_ratio=0.1, kwargs={"period": 4, "period_mult": 2})
    reference = torch_reference(lambda o: CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.1 * LR))
    assert lrs == pytest.approx(reference)
    assert lrs[4] == pytest.approx(LR) and lrs[12] == pytest.approx(LR)  # restarts after 4, then 8 steps


def test_polynomial() -> None:
    lrs = run("polynomial", warmup=4, min_lr_ratio=0.1, kwargs={"power": 2.0})
    assert lrs[4] == pytest.approx(LR)
    assert lrs[10] == pytest.approx(LR * (0.1 + 0.9 * (1 - 6 / 15) ** 2))
    assert lrs[-1] == pytest.approx(0.1 * LR)


def test_inverse_sqrt() -> None:
    lrs = run("inverse_sqrt", warmup=4)
    assert lrs[4] == pytest.approx(LR)
    assert lrs[16] == pytest.approx(LR * math.sqrt(4 / 16))  # fairseq: lr * sqrt(warmup / step)


def test_onecycle_matches_torch() -> None:
    lrs = run("onecycle", warmup=0.25, kwargs={"div_factor": 10.0})
    assert lrs == pytest.approx(torch_reference(lambda o: OneCycleLR(o, max_lr=LR, total_steps=T, pct_start=0.25,
                                                                        div_factor=10.0)))
    assert max(lrs) == pytest.approx(LR) and lrs.index(max(lrs)) == 4  # peak at 25% of the run


def test_epoch_interval() -> None:
    lrs = run("cosine", epochs=4, interval="epoch")
    per_epoch = [lrs[e * 10] for e in range(4)]
    assert per_epoch == pytest.approx([LR * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(4)])
    assert all(lrs[e * 10 + i] == lrs[e * 10] for e in range(4) for i in range(10))  # constant within an epoch


def test_gradient_accumulation_counts_optimizer_steps() -> None:
    model = TinyTask(OptimizerConfig(name="adamw", lr=LR), SchedulerConfig(name="warmup_cosine", warmup=0.2))
    lrs = fit(model, epochs=2, accumulate_grad_batches=4).first_group  # 10 batches/epoch -> 3 steps/epoch
    assert len(lrs) == 6
    assert lrs[0] == 0.0
    assert lrs[1] == pytest.approx(LR)  # warmup 20% of 6 steps = 1 step
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # the floor on the last optimizer step, not the last batch


def test_max_steps_sets_the_length() -> None:
    model = TinyTask(OptimizerConfig(lr=LR), SchedulerConfig(name="linear"))
    lrs = fit(model, epochs=-1, max_steps=7).first_group
    assert lrs == pytest.approx([LR * (1 - t / 6) for t in range(7)])


def test_reduce_on_plateau_follows_the_run_monitor() -> None:
    model = TinyTask(OptimizerConfig(lr=LR), SchedulerConfig(name="reduce_on_plateau", kwargs={"patience": 0,
                                                                                               "factor": 0.5}))
    checkpoint = ModelCheckpoint(monitor="val/const", mode="max")  # the run's --monitor, as RunCheckpoint carries it
    recorder = fit(model, epochs=4, val=True, callbacks=[checkpoint], enable_checkpointing=True)
    per_epoch = [recorder.first_group[e * 10] for e in range(4)]
    # val/const never improves: epoch 0 sets the best, each later epoch halves the LR
    assert per_epoch == pytest.approx([LR, LR, LR / 2, LR / 4])
    lr_config = model.trainer.lr_scheduler_configs[0]
    assert lr_config.monitor == "val/const" and lr_config.interval == "epoch"
    assert lr_config.scheduler.mode == "max"


def test_unknown_scheduler_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        SchedulerConfig(name="cosin")
    message = str(error.value)
    assert "'cosin' is not known" in message and "did you mean cosine" in message
    assert all(name in message for name in known_schedules())
    assert "\n" not in message


def test_bad_schedule_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="'step' does not take gama; its kwargs are: step_size, gamma"):
        run("step", kwargs={"gama": 0.5})
    with pytest.raises(ConfigError, match="warmup of 20 steps is not shorter than the run"):
        run("warmup_cosine", warmup=20)
