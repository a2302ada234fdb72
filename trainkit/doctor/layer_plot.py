"""layers.png: layer health as heatmaps, blocks (in forward order) by logged steps, one panel per statistic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainkit.doctor.curves import Curves
from trainkit.doctor.layers import layer_series

LAYERS_PLOT_FILE = "layers.png"
# (statistic, colour-bar label, log scale): gradient norms and spreads span decades, fractions do not.
PANELS = (("grad_norm", "log10 gradient norm", True), ("act_std", "log10 activation std", True),
          ("dead_frac", "dead ReLU fraction", False), ("sat_frac", "saturated fraction", False))


def plot_layers(curves: Curves, path: Path) -> Path | None:
    """Write the heatmaps of the run's `layers/...` metrics to `path`; None when the run logged none."""
    panels = [(stat, label, log) for stat, label, log in PANELS if layer_series(curves, stat)]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    rows = max(len(layer_series(curves, stat)) for stat, _, _ in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.2 + len(panels) * (0.8 + 0.25 * rows)), squeeze=False)
    for ax, (stat, label, log) in zip(axes[:, 0], panels, strict=True):
        blocks = layer_series(curves, stat)
        steps = np.unique(np.concatenate([series.steps for series in blocks.values()]))
        grid = np.full((len(blocks), len(steps)), np.nan)
        for row, series in enumerate(blocks.values()):
            grid[row, np.searchsorted(steps, series.steps)] = series.values
        if log:
            grid = np.log10(np.clip(grid, 1e-12, None))  # an exactly-zero gradient shows as -12, not a hole
        image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis" if log else "magma",
                          vmin=None if log else 0.0, vmax=None if log else 1.0)
        ax.set_yticks(range(len(blocks)), labels=list(blocks), fontsize=7)
        ticks = np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int)
        ax.set_xticks(ticks, labels=[str(int(steps[i])) for i in ticks], fontsize=7)
        ax.set_title(label, fontsize=9)
        fig.colorbar(image, ax=ax)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("trainkit doctor: layer health (first block at the top)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
