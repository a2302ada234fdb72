"""DistillationModule: a frozen, always-eval teacher; only the student trains and is saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from tests.conftest import REPO, TINY_DIGITS, run_trainkit, tiny_argv
from trainkit.checkpoints import load_task
from trainkit.data import DigitsDataModule, TeacherLogitsDataModule
from trainkit.tasks import ClassificationModule, DistillationModule

CONFIG = REPO / "configs" / "distillation" / "digits.yaml"


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trainkit checkpoint of the tiny digits classifier (test_resnet, 16 px)."""
    runs = tmp_path_factory.mktemp("teacher_runs")
    assert run_trainkit("fit", *TINY_DIGITS, "--runs_dir", runs, "--test_after_fit", "false") == 0
    return runs / "digits" / "version_0" / "checkpoints" / "best.ckpt"


def _student(teacher: str | torch.nn.Module | None) -> DistillationModule:
    return DistillationModule(teacher=teacher, backbone="test_resnet", num_classes=10, in_chans=1, temperature=2.0)


def _trainer(tmp_path: Path, **kwargs) -> Trainer:
    settings = dict(
        max_epochs=1, limit_train_batches=3, limit_val_batches=1, limit_test_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    return Trainer(**{**settings, **kwargs})


def test_teacher_never_trains_nor_gets_gradients(teacher_ckpt: Path, tmp_path: Path) -> None:
    model = _student(str(teacher_ckpt))
    data = DigitsDataModule(batch_size=32, image_size=16)
    seen_modes: list[bool] = []
    student_before: dict[str, torch.Tensor] = {}

    def on_setup_done(trainer: Trainer, module: DistillationModule) -> None:
        assert isinstance(module.teacher, ClassificationModule)
        module.teacher.register_forward_pre_hook(lambda mod, args: seen_modes.append(mod.training))
        student_before.update({k: v.clone() for k, v in module.net.state_dict().items()})

    from lightning.pytorch import Callback

    class Hook(Callback):
        def on_fit_start(self, trainer: Trainer, pl_module: DistillationModule) -> None:
            on_setup_done(trainer, pl_module)

    _trainer(tmp_path, callbacks=[Hook()], num_sanity_val_steps=1).fit(model, datamodule=data)
    assert len(seen_modes) >= 4 and not any(seen_modes)  # sanity val + 3 training steps + val, all in eval mode
    assert model.optimized_module() is model.net
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    original = load_task(teacher_ckpt).state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.teacher.state_dict().items())  # BN stats included
    assert any(not torch.equal(v, student_before[k]) for k, v in model.net.state_dict().items())


def test_checkpoint_holds_only_the_student_and_tests_without_teacher(
    teacher_ckpt: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = workdir / "teacher.ckpt"
    shutil.copy(teacher_ckpt, teacher)
    args = tiny_argv(CONFIG, "--model.init_args.teacher", teacher, "--model.init_args.backbone", "test_resnet",
                     "--data.init_args.image_size", "16", limit_train_batches=3, limit_val_batches=2,
                     limit_test_batches=2)
    assert run_trainkit("fit", *args, "--test_after_fit", "true") == 0
    out = capsys.readouterr().out
    assert "distillation      parameters   test acc" in out and "test/teacher_acc" in out
    teacher_params = sum(p.numel() for p in load_task(teacher).parameters())
    assert f"{teacher_params:,}" in out
    best = workdir / "runs" / "digits_distill" / "version_0" / "checkpoints" / "best.ckpt"
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    assert state and all(k.startswith("net.") for k in state)
    teacher.unlink()  # the student checkpoint is all `trainkit test` needs
    assert run_trainkit("test", *args, "--ckpt_path", best) == 0
    assert "test/acc" in capsys.readouterr().out


def test_precomputed_teacher_logits_with_unlabeled_pool(teacher_ckpt: Path, tmp_path: Path) -> None:
    inner = DigitsDataModule(batch_size=32, image_size=16)
    pool = DigitsDataModule(batch_size=32, image_size=16, split_seed=1)  # another split's images, labels dropped
    data = TeacherLogitsDataModule(inner, str(teacher_ckpt), pool=pool)
    data.setup("fit")
    train_set = inner.splits["train"]
    assert len(data.train_set) == len(train_set) + len(pool.splits["train"])
    teacher = load_task(teacher_ckpt).eval()
    x0, y0, logits0 = data.train_set[5]
    assert int(y0) == int(train_set[5][1])
    with torch.no_grad():
        assert torch.allclose(logits0, teacher(x0[None])[0], atol=1e-5)
    assert int(data.train_set[len(train_set)][1]) == -1
    model = _student(None)  # no teacher at all: the batches carry its logits
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    _trainer(tmp_path, num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=data)
    assert any(not torch.equal(v, before[k]) for k, v in model.net.state_dict().items())


def test_a_batch_of_unlabeled_pool_samples_only_still_trains() -> None:
    # with 10 labels per class and a large pool, a shuffled batch is often all pool: the metrics have nothing to score
    model = _student(None)
    batch = (torch.randn(4, 1, 16, 16), torch.full((4,), -1), torch.randn(4, 10))
    with pytest.warns(UserWarning, match="self.log"):  # no Trainer here
        loss = model._shared_step(batch, "train")
    assert loss.isfinite() and loss.requires_grad
    assert not model.train_metrics["acc"].update_called


def test_missing_teacher_is_a_one_line_error(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    code = trainkit("fit", "--config", CONFIG, "--model.init_args.teacher", "nowhere/best.ckpt",
                    "--trainer.enable_progress_bar", "false")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "teacher checkpoint 'nowhere/best.ckpt' does not exist" in err[-1] and "make fit" in err[-1]
    assert not (workdir / "runs" / "digits_distill" / "version_0" / "checkpoints").exists()
