"""Knowledge distillation: a small student classifier learns from a frozen teacher's softened outputs.

The student is an ordinary classifier (this module extends ClassificationModule, so metrics, prediction CSVs and
checkpoint keys are the classifier's); the teacher is loaded when fitting, never trained, and left out of the
checkpoints, so `trainkit test/predict` need only the student.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from trainkit.checkpoints import load_task
from trainkit.errors import ConfigError
from trainkit.losses import DistillationLoss
from trainkit.reports.distillation import DistillationReport
from trainkit.tasks.classification import ClassificationModule

TEACHER = "teacher"


class DistillationModule(ClassificationModule):
    """Train the classifier `backbone` (the student) on alpha * KD + (1 - alpha) * cross-entropy against `teacher`.

    Val/test also log `teacher_acc`, and the test end prints teacher and student parameter counts and accuracies
    side by side. Batches of three (image, label, teacher logits) use the given logits instead of running the
    teacher (see TeacherLogitsDataModule).
    """

    report_writer = DistillationReport

    def __init__(
        self,
        teacher: str | nn.Module | None = None,
        temperature: float = 4.0,
        alpha: float = 0.9,
        **kwargs: Any,
    ) -> None:
        """Args:
        teacher: a trainkit checkpoint (its task class is read from it), or any module mapping images to logits
            (class_path); None when every training batch carries precomputed teacher logits.
        temperature: softening of teacher and student outputs in the KD term.
        alpha: weight of the KD term; 1 - alpha weighs the cross-entropy on labels.
        **kwargs: the student classifier's arguments (backbone, num_classes, in_chans, ..., optimizer, scheduler).
        """
        super().__init__(**kwargs)
        module_backbone = isinstance(kwargs.get("backbone"), nn.Module)
        self.save_hyperparameters(ignore=["loss", TEACHER] + (["backbone"] if module_backbone else []))
        self.teacher_source = teacher if isinstance(teacher, str) else None
        self.teacher: nn.Module | None = None
        if isinstance(teacher, nn.Module):
            self._set_teacher(teacher)
        self.distillation = DistillationLoss(temperature, alpha, hard_loss=self.criterion)
        self.teacher_acc = nn.ModuleDict({
            stage: MulticlassAccuracy(self.num_classes, average="micro") for stage in ("val", "test")
        })

    def _set_teacher(self, teacher: nn.Module) -> None:
        self.teacher = teacher.requires_grad_(False).eval()

    def optimized_module(self) -> nn.Module:
        """The student alone: the teacher never trains."""
        return self.net

    def train(self, mode: bool = True) -> DistillationModule:
        """Lightning switches the whole module to train mode each epoch; the teacher stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.teacher is None and self.teacher_source is not None and stage != "predict":
            if Path(self.teacher_source).is_file():
                self._set_teacher(load_task(self.teacher_source))
            elif stage == "fit":
                raise ConfigError(
                    f"teacher checkpoint '{self.teacher_source}' does not exist; train the teacher first (`make fit` "
                    "writes runs/digits/version_0/checkpoints/best.ckpt) or set --model.init_args.teacher PATH"
                )
            else:
                rank_zero_warn(f"teacher checkpoint '{self.teacher_source}' is gone; reporting the student alone")
        if self.teacher is not None:
            # Lightning moves the model to its device before setup returns only for modules it already knew.
            self.teacher.to(self.device)
            rank_zero_info(
                f"distillation: teacher {type(self.teacher).__name__} {_count(self.teacher):,} parameters, "
                f"student {_count(self.net):,} ({_count(self.net) / _count(self.teacher):.1%} of the teacher)"
            )

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch[0], batch[1]
        logits = self(x)
        teacher_logits = batch[2] if len(batch) > 2 else self._teacher_logits(x)
        if teacher_logits is None:
            if stage == "train":
                raise ConfigError(
                    "distillation has no teacher: set --model.init_args.teacher to a checkpoint (e.g. "
                    "runs/digits/version_0/checkpoints/best.ckpt) or use TeacherLogitsDataModule"
                )
            return self.criterion(logits, y), logits, y
        if stage in self.teacher_acc:
            self.teacher_acc[stage].update(teacher_logits, y)
            self.log(f"{stage}/teacher_acc", self.teacher_acc[stage], on_step=False, on_epoch=True, batch_size=len(y))
        labeled = y >= 0  # unlabeled pool samples (-1) count for the loss, not for the accuracy
        return self.distillation(logits, teacher_logits, y), logits[labeled], y[labeled]

    @torch.no_grad()
    def _teacher_logits(self, x: Tensor) -> Tensor | None:
        return self.teacher(x) if self.teacher is not None else None

    def on_test_end(self) -> None:
        super().on_test_end()
        metrics = self.trainer.callback_metrics
        if self.teacher is None or "test/teacher_acc" not in metrics or not self.trainer.is_global_zero:
            return
        teacher_acc, student_acc = float(metrics["test/teacher_acc"]), float(metrics["test/acc"])
        print(
            "\ndistillation      parameters   test acc\n"
            f"  teacher     {_count(self.teacher):>14,}   {teacher_acc:.4f}\n"
            f"  student     {_count(self.net):>14,}   {student_acc:.4f}\n"
            f"  student/teacher {_count(self.net) / _count(self.teacher):>9.1%}   {student_acc / teacher_acc:.1%}",
            flush=True,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the student: a checkpoint to test, predict or export needs no teacher."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(f"{TEACHER}.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints hold no teacher; keep the one this module loaded so that strict loading still matches."""
        super().on_load_checkpoint(checkpoint)
        if self.teacher is not None:
            checkpoint["state_dict"].update({f"{TEACHER}.{k}": v for k, v in self.teacher.state_dict().items()})


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
