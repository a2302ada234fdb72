"""Experiment trackers (`--trainer.logger` MLflow, Weights & Biases, ...): they log beside the run folder's own CSV
and TensorBoard loggers, and receive the full resolved config, as parameters and as the file config.yaml."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from trainkit.errors import ConfigError

# MLflow 3 refuses its local file store unless asked, and the logger is built while the config is parsed: a local,
# offline folder is what configs/loggers/mlflow.yaml means (an explicit MLFLOW_ALLOW_FILE_STORE still wins).
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
# MLflow retries a dead server 7 times with doubling waits (271 s of silence); two short retries tell the same.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def check_trackers(config: Any) -> None:
    """Open each MLflow `tracking_uri` of the parsed config before anything is built, so an unknown scheme, a server
    that does not answer or a folder that cannot be written is one line naming the URI, not an error mid-setup."""
    loggers = (config.get("trainer") or {}).get("logger")
    for entry in loggers if isinstance(loggers, list | tuple) else [loggers]:
        if not str(getattr(entry, "class_path", "") or "").endswith("MLFlowLogger"):
            continue
        uri = (entry.get("init_args") or {}).get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            continue
        try:
            _open_mlflow(str(uri))
        except Exception as error:  # noqa: BLE001  any failure of the store is the same advice
            text = " ".join(str(error).split())
            errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)  # a refused connection, a name not known, ...
            reason = errno.group(0) if errno else text[:200] or type(error).__name__
            raise ConfigError(f"MLflow cannot use tracking_uri {uri} ({type(error).__name__}: {reason}); set "
                              "--trainer.logger.init_args.tracking_uri to a server that answers or a writable "
                              "file:./mlruns folder") from error


def _open_mlflow(uri: str) -> None:
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    if uri.startswith("file:") or "://" not in uri:
        folder = Path(urlparse(uri).path if uri.startswith("file:") else uri)
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"[Errno 13] Permission denied: '{folder}'")
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def with_run_loggers(run_loggers: list[Logger], given: Any) -> list[Logger]:
    """The run folder's loggers first (so `trainer.log_dir` stays the run folder), then the user's trackers."""
    return [*run_loggers, *(given if isinstance(given, list | tuple) else [given])]


def _already_logged(*args: Any, **kwargs: Any) -> None:
    """Stands in for a tracker's log_hyperparams once the whole config is logged."""


def log_config(trainer: Trainer, text: str, run_dir: Path) -> None:
    """Hand the resolved config (YAML `text`, as saved in `run_dir`) to every tracker among the trainer's loggers."""
    trackers = [lg for lg in trainer.loggers if not isinstance(lg, CSVLogger | TensorBoardLogger)]
    if not trackers:
        return
    import yaml

    config = yaml.safe_load(text) or {}
    for tracker in trackers:
        tracker.log_hyperparams(config)  # each logger flattens nested keys its own way (model/init_args/lr)
        # The config already holds the model's arguments (model/init_args/...); Lightning's later flat log of the
        # module's hparams would clash with top-level keys of the same name (the monitor's `mode`, the task's `mode`).
        tracker.log_hyperparams = _already_logged  # type: ignore[method-assign]
        if isinstance(tracker, MLFlowLogger):
            client, run_id = tracker.experiment, tracker.run_id
            client.log_text(run_id, text, "config.yaml")
            client.set_tag(run_id, "trainkit.run_dir", str(run_dir))
            client.set_tag(run_id, "trainkit.experiment", str(config.get("experiment")))
        elif isinstance(tracker, WandbLogger):
            tracker.experiment.save(str(run_dir / "config.yaml"), base_path=str(run_dir), policy="now")
