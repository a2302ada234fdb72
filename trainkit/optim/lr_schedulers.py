"""The two LRScheduler subclasses: ScheduleLR (each group's base LR times one closed-form factor) and OneCycle
(torch's OneCycleLR, extended so param groups added later join the cycle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR

from trainkit.errors import ConfigError

_CYCLE_KEYS = ("max_momentum", "base_momentum")


class ScheduleLR(LRScheduler):
    """LR of group i at interval t = base_lr[i] * factor(t).

    A param group added during training (a backbone unfrozen by `BackboneFreeze`) joins with its LR at that moment as
    its base LR and follows the same schedule from the current interval on.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float], last_epoch: int = -1,
                 total: int | None = None) -> None:
        self.factor = factor
        self.total = total  # the run length the factor was built for (a resume into another length is reported)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        for group in groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in groups]
        factor = self.factor(self.last_epoch)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        # The factor is a closure rebuilt from the config; only the position and base LRs are state.
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "factor")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A new run length is followed (the factor is rebuilt for it); another kind of schedule cannot be resumed.
        if "total_steps" in state_dict:
            raise schedule_changed()
        _note_new_length(state_dict.get("total"), self.total)
        super().load_state_dict({**state_dict, "total": self.total})


class OneCycle(OneCycleLR):
    """torch's OneCycleLR; a group added during training (an unfrozen backbone) cycles around its own LR."""

    def get_lr(self) -> list[float]:
        first = self.optimizer.param_groups[0]
        for group in self.optimizer.param_groups:
            if "max_lr" not in group:  # added after construction: same cycle, scaled to the group's LR
                group["max_lr"] = group["lr"]
                group["initial_lr"] = group["lr"] * first["initial_lr"] / first["max_lr"]
                group["min_lr"] = group["lr"] * first["min_lr"] / first["max_lr"]
                group.update({key: first[key] for key in _CYCLE_KEYS if key in first})
        return super().get_lr()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Resumed into a longer or shorter run, the cycle is laid over the new length from the current step (the
        # policy of every trainkit schedule); torch alone keeps the old length and fails with "Tried to step".
        if "total_steps" not in state_dict:
            raise schedule_changed()
        _note_new_length(state_dict["total_steps"], self.total_steps)
        super().load_state_dict({**state_dict, "total_steps": self.total_steps,
                                 "_schedule_phases": self._schedule_phases})


def _note_new_length(saved: int | None, now: int | None) -> None:
    if saved is not None and now is not None and saved != now:
        rank_zero_info(f"trainkit: the LR schedule follows the resumed run's length ({saved} -> {now} intervals)")


def schedule_changed() -> ConfigError:
    """The one-line refusal to resume a checkpoint whose LR schedule is of another kind than this run's."""
    return ConfigError(
        "the checkpoint's LR schedule is of another kind than this run's (e.g. a one-cycle that fell back to a "
        "constant LR in a run too short for it); resume with the schedule it started with "
        "(--model.init_args.scheduler.*), or start a fresh fit without --ckpt_path"
    )
