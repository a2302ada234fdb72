"""`trainkit lr-find --config X.yaml`: Lightning's learning-rate range test. Prints the suggested LR and the range
that is safe (or says the curve gives no clear answer), saves the plot of loss against LR and, with --write_config, a
copy of the config that uses the suggestion. Takes every `trainkit fit` flag; the model's weights are left as they
were (Lightning restores them after the test)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from trainkit.commands._quiet_cli import quiet_cli
from trainkit.errors import ConfigError
from trainkit.optim.lr_range import LRSuggestion, suggest_lr


def main(argv: list[str]) -> None:
    """Run `trainkit lr-find`."""
    parser = argparse.ArgumentParser(
        prog="trainkit lr-find",
        description="Learning-rate range test (Smith, 2015): train a few steps with the LR rising exponentially from "
        "--min_lr to --max_lr and suggest the LR where the loss falls fastest in its stable descent before the "
        "minimum, with the range around it that is safe. Every other flag is a `trainkit fit` flag (--config X.yaml, "
        "--trainer.*, --model.*).",
    )
    parser.add_argument("--min_lr", type=float, default=1e-6, help="lowest LR tried (default 1e-6)")
    parser.add_argument("--max_lr", type=float, default=1.0, help="highest LR tried (default 1)")
    parser.add_argument("--num_training", type=int, default=100, help="training steps of the search (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="plot (default RUNS_DIR/EXPERIMENT/lr_find.png)")
    parser.add_argument("--write_config", type=Path, default=None, help="write the config with the suggested LR here")
    args, rest = parser.parse_known_args(argv)
    if not 0 < args.min_lr < args.max_lr:
        raise ConfigError(f"--min_lr {args.min_lr:g} and --max_lr {args.max_lr:g} need 0 < min_lr < max_lr")
    if args.num_training < 20:
        raise ConfigError(f"--num_training {args.num_training} is too few to suggest an LR; use at least 20")
    if args.write_config is not None and args.write_config.exists():
        raise ConfigError(f"{args.write_config} already exists; pass a new file to --write_config")

    from lightning.pytorch.tuner import Tuner

    cli = quiet_cli(rest)
    model = cli.model
    result = Tuner(cli.trainer).lr_find(
        model, datamodule=cli.datamodule, min_lr=args.min_lr, max_lr=args.max_lr, num_training=args.num_training,
        update_attr=False,
    )
    if result is None or not result.results.get("lr"):
        raise ConfigError("the range test ended too early to suggest an LR; raise --num_training or --max_lr")
    found = suggest_lr(result.results["lr"], result.results["loss"])

    config = cli.config
    out = args.out or Path(config.runs_dir) / config.experiment / "lr_find.png"
    _plot(result.results["lr"], result.results["loss"], found, out)
    searched = f"searched {args.min_lr:g} to {args.max_lr:g}, {len(result.results['lr'])} steps"
    if found.lr is None:
        lines = [f"trainkit lr-find: no clear answer ({searched}): {found.note}", f"  plot    {out}"]
        if args.write_config is not None:
            lines.append(f"  config  {args.write_config} not written: the curve suggests no LR")
        print("\n".join(lines), flush=True)
        return
    lines = [
        f"trainkit lr-find: suggested lr {found.lr:.3g} ({searched})",
        f"  safe    {found.low:.3g} to {found.high:.3g} (the loss falls at least half as fast as at the suggestion; "
        f"its minimum is at {found.minimum:.3g}, too high to train at)",
        f"  plot    {out}",
    ]
    if found.note:
        lines.append(f"  note    {found.note}")
    # With batch-size LR scaling the finder searched the scaled LR; the config holds the unscaled one.
    config_lr = found.lr * model.optimizer_config.lr / model.base_lr
    if config_lr != found.lr:
        lines.append(f"  config lr {config_lr:.3g} (the suggestion before {model.optimizer_config.lr_scaling} scaling)")
    if args.write_config is not None:
        _write_config(cli, config_lr, args.write_config)
        lines.append(f"  config  {args.write_config} (trainkit fit --config {args.write_config})")
    print("\n".join(lines), flush=True)


def _plot(lrs: list[float], losses: list[float], found: LRSuggestion, out: Path) -> None:
    """Loss against LR (log axis), the safe range shaded and the suggestion marked; the curve beside it as CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{lr:.6g},{loss:.6g}\n" for lr, loss in zip(lrs, losses, strict=True))
    out.with_suffix(".csv").write_text("lr,loss\n" + rows)  # the curve itself, to read or replot
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    if found.lr is not None:
        ax.axvspan(found.low, found.high, color="tab:green", alpha=0.15, label="safe range")
        ax.axvline(found.lr, color="tab:red", lw=1.2, label=f"suggested {found.lr:.3g}")
        ax.legend(fontsize=8)
        title = "LR range test: steepest stable descent before the minimum"
    else:
        title = "LR range test: no clear answer"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _write_config(cli, lr: float, path: Path) -> None:  # noqa: ANN001
    """The resolved config, as `trainkit fit` saves it, with the optimizer's lr set to `lr`."""
    data = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    for key in ("logger", "enable_checkpointing"):  # the quiet flags lr-find added are not the experiment's
        data.get("trainer", {}).pop(key, None)
    init_args = data["model"].setdefault("init_args", {})
    optimizer = init_args.get("optimizer") or {}
    optimizer["lr"] = float(f"{lr:.3g}")
    init_args["optimizer"] = optimizer
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
