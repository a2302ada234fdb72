"""OneCycle: torch's OneCycleLR (LR and momentum cycling), extended so param groups added later join the cycle."""

from __future__ import annotations

from torch.optim.lr_scheduler import OneCycleLR

_CYCLE_KEYS = ("max_momentum", "base_momentum")


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
