"""`trainkit test|validate|predict --ckpt_path PATH` without `--config`: the config saved in the checkpoint's run
folder is used (a `--config` given explicitly still wins, and every other flag still overrides it)."""

from __future__ import annotations

from pathlib import Path

from trainkit.errors import ConfigError
from trainkit.runs import CKPT_ALIASES, resolve_ckpt_path, run_dir_of_checkpoint

EVALUATION_COMMANDS = ("test", "validate", "predict")
_SOURCE_FLAG = "--predictions.source"
_CONFIG_FLAGS = ("--config", "-c", "--print_config", "-h", "--help")


def with_saved_config(argv: list[str]) -> list[str]:
    """`argv` with `--config <run folder>/config.yaml` inserted after the subcommand when it evaluates a checkpoint
    and names no config; unchanged otherwise. `predict --source PATH` is short for `--predictions.source PATH`."""
    if len(argv) < 2 or argv[0] not in EVALUATION_COMMANDS:
        return argv
    if argv[0] == "predict":
        argv = [_SOURCE_FLAG + arg[len("--source"):] if arg.split("=")[0] == "--source" else arg for arg in argv]
    flags = {arg.split("=", 1)[0] for arg in argv[1:]}
    ckpt = flag_value(argv, "--ckpt_path")
    if flags & set(_CONFIG_FLAGS) or ckpt is None:
        return argv
    if ckpt in CKPT_ALIASES:
        runs_dir, experiment = flag_value(argv, "--runs_dir") or "runs", flag_value(argv, "--experiment")
        if experiment is None:
            raise ConfigError(f"--ckpt_path {ckpt} without --config needs the experiment; add --experiment NAME, "
                              "or pass the checkpoint file (runs/<experiment>/version_N/checkpoints/best.ckpt)")
        ckpt = resolve_ckpt_path(ckpt, runs_dir, experiment, (), flag_value(argv, "--run_name"))
    saved = saved_config(ckpt) if ckpt else None
    if saved is None:
        raise ConfigError(f"checkpoint '{ckpt}' has no config.yaml beside its run folder; pass the experiment's "
                          f"config too: trainkit {argv[0]} --config CONFIG.yaml --ckpt_path {ckpt}")
    return [argv[0], "--config", str(saved), *argv[1:]]


def saved_config(ckpt_path: str | Path) -> Path | None:
    """The newest config saved in the run folder that holds `ckpt_path` (config-N.yaml after a changed resume)."""
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"checkpoint '{ckpt_path}' does not exist; pass an existing .ckpt file")
    run_dir = run_dir_of_checkpoint(ckpt_path)
    return newest_config(run_dir) if run_dir is not None else None


def newest_config(run_dir: str | Path) -> Path | None:
    """The run's config.yaml, or its newest config-N.yaml (written when a resume changed the config)."""

    def index(path: Path) -> int:
        suffix = path.stem.removeprefix("config").removeprefix("-")
        return int(suffix) if suffix.isdigit() else 0

    saved = sorted(Path(run_dir).glob("config*.yaml"), key=index)
    return saved[-1] if saved else None


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of `flag` (`--flag VALUE` or `--flag=VALUE`); the last one wins, as in the parser."""
    found = None
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            found = argv[index + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found
