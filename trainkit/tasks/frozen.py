"""Frozen helper networks of a task (a DPO or RL reference, an RL reward model): kept in eval mode, never trained,
left out of checkpoints and rebuilt from their source when one is loaded."""

from __future__ import annotations

from typing import Any

from torch import nn


class FrozenModels:
    """Mixin for a TaskModule: the submodules named in `frozen_models` are frozen helpers, not part of the model."""

    frozen_models: tuple[str, ...] = ()

    def freeze_helpers(self) -> None:
        """Freeze the helpers (no gradients, eval mode); call once they are built."""
        for module in self._helpers().values():
            module.requires_grad_(False).eval()

    def _helpers(self) -> dict[str, nn.Module]:
        return {name: m for name in self.frozen_models if (m := getattr(self, name, None)) is not None}

    def train(self, mode: bool = True) -> Any:
        """Lightning switches the whole module to train mode each epoch; the helpers stay in eval mode."""
        super().train(mode)  # type: ignore[misc]
        for module in self._helpers().values():
            module.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained model: the helpers are rebuilt from their source."""
        state = checkpoint["state_dict"]
        prefixes = tuple(f"{name}." for name in self._helpers())
        for key in [k for k in state if k.startswith(prefixes)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints hold no helpers; keep this module's so that strict loading still matches."""
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        for name, module in self._helpers().items():
            checkpoint["state_dict"].update({f"{name}.{k}": v for k, v in module.state_dict().items()})
