"""`trainkit plot-lr --config X.yaml`: draw the LR schedule a config will produce over its whole run, without
training. Takes every `trainkit fit` flag; writes a PNG and a CSV (interval, lr of each param group)."""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

from torch.optim.lr_scheduler import ReduceLROnPlateau

from trainkit.commands._quiet_cli import attach_for_fit, quiet_cli
from trainkit.errors import ConfigError


def main(argv: list[str]) -> None:
    """Run `trainkit plot-lr`."""
    parser = argparse.ArgumentParser(
        prog="trainkit plot-lr",
        description="Plot the LR schedule of a config over its whole run without training. Every other flag is a "
        "`trainkit fit` flag (--config X.yaml, --model.init_args.scheduler.name ..., --trainer.max_epochs ...).",
    )
    parser.add_argument("--out", type=Path, default=None, help="PNG (default RUNS_DIR/EXPERIMENT/lr_schedule.png)")
    args, rest = parser.parse_known_args(argv)

    cli = quiet_cli(rest)
    trainer, model = cli.trainer, cli.model
    attach_for_fit(trainer, model, cli.datamodule)
    configured = model.configure_optimizers()
    if not isinstance(configured, dict):
        raise ConfigError("the config has no LR scheduler (constant LR); set --model.init_args.scheduler.name")
    optimizer, lr_config = configured["optimizer"], configured["lr_scheduler"]
    scheduler, interval = lr_config["scheduler"], lr_config["interval"]
    total = int(trainer.estimated_stepping_batches) if interval == "step" else _epochs(trainer)
    plateau = isinstance(scheduler, ReduceLROnPlateau)  # metric-driven: nothing to draw but its starting LR
    note = " (reduce_on_plateau: drawn without plateaus; the LR drops when the metric stalls)" if plateau else ""
    lrs: list[list[float]] = []
    with warnings.catch_warnings():  # stepping a scheduler with no optimizer.step() warns; no training happens here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(total):
            lrs.append([group["lr"] for group in optimizer.param_groups])
            if not plateau:
                scheduler.step()

    config = cli.config
    out = args.out or Path(config.runs_dir) / config.experiment / "lr_schedule.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, lrs, interval, note)
    peak = max(max(row) for row in lrs)
    print(
        f"trainkit plot-lr: {total} {interval}s, lr {lrs[0][0]:.4g} at the start, peak {peak:.4g}, {lrs[-1][0]:.4g} "
        f"at the end{note}\n  plot  {out}\n  table {out.with_suffix('.csv')}",
        flush=True,
    )


def _epochs(trainer) -> int:  # noqa: ANN001
    from trainkit.optim.schedule_registry import total_intervals

    return int(total_intervals(trainer, "epoch"))


def _write(out: Path, lrs: list[list[float]], interval: str, note: str) -> None:
    """The PNG (one line per param group) and the CSV beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = len(lrs[0])
    with out.with_suffix(".csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([interval, *(f"lr_group{g}" for g in range(groups))])
        writer.writerows([t, *row] for t, row in enumerate(lrs))
    fig, ax = plt.subplots(figsize=(7, 4))
    curves: dict[tuple[float, ...], list[int]] = {}  # groups that differ only in weight decay share one curve
    for g in range(groups):
        curves.setdefault(tuple(row[g] for row in lrs), []).append(g)
    for curve, members in curves.items():
        ax.plot(range(len(lrs)), curve, label=f"param groups {', '.join(map(str, members))}")
    ax.set_xlabel(f"{interval} (optimizer steps)" if interval == "step" else "epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"LR schedule{note}", fontsize=9)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
