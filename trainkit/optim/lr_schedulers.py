"""The two LRScheduler subclasses: ScheduleLR (each group's base LR times one closed-form factor) and OneCycle
(torch's OneCycleLR, extended so param groups added later join the cycle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
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
        self.total = total  # the run length the factor was built for; a resume must keep it
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
        saved = state_dict.get("total", state_dict.get("total_steps"))
        if "total_steps" in state_dict or (saved is not None and self.total is not None and saved != self.total):
            raise schedule_changed(saved, self.total)
        super().load_state_dict(state_dict)


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
        saved = state_dict.get("total_steps", state_dict.get("total"))
        if saved != self.total_steps or "total_steps" not in state_dict:
            raise schedule_changed(saved, self.total_steps)
        super().load_state_dict(state_dict)


def schedule_changed(saved: int | None, now: int | None) -> ConfigError:
    """The one-line refusal to resume a schedule built for another run length (torch would step past its end)."""
    built = f"a run of {saved} intervals" if saved else "another kind of schedule"
    return ConfigError(
        f"the checkpoint's LR schedule was built for {built}, this run needs {now or 'another'}: trainkit does not "
        "stretch a schedule on resume; resume with the run length it started with (the same --trainer.max_epochs / "
        "--trainer.max_steps), or start a fresh fit without --ckpt_path"
    )
